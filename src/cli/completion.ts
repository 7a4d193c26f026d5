/**
 * `mesh completion bash|zsh`: prints a shell completion script. The script is generated from the
 * commander program itself (its commands, options, option values and argument choices), so it stays
 * true as commands and flags are added; nothing here names a mesh command.
 *
 * What it completes: subcommand names at every level (`mesh ex` → `exec`, `mesh ca s` → `sign`), the
 * options of the command being typed plus the program's own (`--home`, `--json`, `--jsonl`, which
 * commander accepts after a subcommand too), the values of options and arguments that have choices
 * (`--role`, `mesh completion <shell>`), directories for an option whose value is `<dir>` and files for
 * `<file>`. Option values are skipped when finding the command, in both spellings (`--home DIR`,
 * `--home=DIR`). Free text (a ticket, a zone, an action name) is not guessed.
 *
 * Install: `source <(mesh completion bash)` in ~/.bashrc, or `mesh completion bash >
 * /etc/bash_completion.d/mesh`; for zsh, `mesh completion zsh > "${fpath[1]}/_mesh"` (then `compinit`)
 * or `source <(mesh completion zsh)` after `compinit` (docs/install.md).
 */
import type { Command, Option } from 'commander'
import { MESH_VERSION_LINE } from '../version.js'
import { UsageError } from './errors.js'
import type { CliIo } from './io.js'

/** The shells `mesh completion` writes scripts for. */
export const COMPLETION_SHELLS = ['bash', 'zsh'] as const
export type CompletionShell = (typeof COMPLETION_SHELLS)[number]

/** What an option's value is, for completing it. */
export type ValueKind = 'directory' | 'file' | 'text'

/** One option of a command, as completion sees it. */
export interface OptionSpec {
  /** Every spelling, short first: `['-h', '--help']`. */
  readonly names: readonly string[]
  readonly description: string
  /** Absent for a flag without a value. */
  readonly value?: { readonly name: string; readonly kind: ValueKind; readonly choices?: readonly string[] }
}

/** One positional argument of a command. */
export interface ArgumentSpec {
  readonly name: string
  readonly variadic: boolean
  readonly choices?: readonly string[]
}

/** One command (the program itself has the empty path), as completion sees it. */
export interface CommandSpec {
  /** Subcommand names from the program down: `[]`, `['ca']`, `['ca', 'sign']`. */
  readonly path: readonly string[]
  readonly description: string
  readonly subcommands: readonly { readonly name: string; readonly description: string }[]
  /** The command's own options, then those of its ancestors that apply to it. */
  readonly options: readonly OptionSpec[]
  /** How many of {@link options} are the command's own (the first ones). */
  readonly ownOptions: number
  readonly args: readonly ArgumentSpec[]
}

/**
 * Value names that mean a path. commander keeps only the flags text, so the kind is read from the
 * value's name in it (`--home <dir>`, `--network-key <file>`).
 */
const VALUE_KINDS: Readonly<Record<string, ValueKind>> = {
  dir: 'directory',
  directory: 'directory',
  file: 'file',
  path: 'file',
}

/** Options of an ancestor a subcommand does not inherit: each command has its own help, only the program a version. */
const NOT_INHERITED = new Set(['--help', '--version'])

function optionSpec(option: Option): OptionSpec {
  const names = [option.short, option.long].filter((n): n is string => n !== undefined)
  const base = { names, description: option.description }
  if (!option.required && !option.optional) return base
  const name = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1]?.replace(/\.\.\.$/, '') ?? 'value'
  const kind = VALUE_KINDS[name] ?? 'text'
  const choices = option.argChoices
  return { ...base, value: { name, kind, ...(choices !== undefined ? { choices } : {}) } }
}

/** Every command of `program`, the program first, each before its subcommands. */
export function describeCommands(program: Command): CommandSpec[] {
  const help = program.createHelp()
  const out: CommandSpec[] = []
  // `parent` is passed rather than read: commander's implicit `help` command is a placeholder without one.
  const visit = (command: Command, parent: Command | undefined, path: string[], inherited: OptionSpec[]) => {
    const own = help.visibleOptions(command).map(optionSpec)
    const subcommands = help.visibleCommands(command)
    let args: ArgumentSpec[] = command.registeredArguments.map(a => ({
      name: a.name(),
      variadic: a.variadic,
      ...(a.argChoices !== undefined ? { choices: a.argChoices } : {}),
    }))
    // The implicit `help [command]` has no choices of its own: its argument is a sibling's name.
    if (command.name() === 'help' && parent !== undefined && args.length === 1) {
      const siblings = help.visibleCommands(parent).map(c => c.name())
      args = args.map(a => ({ ...a, choices: siblings.filter(s => s !== 'help') }))
    }
    out.push({
      path,
      description: command.description(),
      subcommands: subcommands.map(c => ({ name: c.name(), description: c.description() })),
      options: [...own, ...inherited],
      ownOptions: own.length,
      args,
    })
    const passDown = [...inherited, ...own.filter(o => !o.names.some(n => NOT_INHERITED.has(n)))]
    for (const sub of subcommands) visit(sub, command, [...path, sub.name()], passDown)
  }
  visit(program, undefined, [], [])
  return out
}

/** `text` as one single-quoted shell word (bash and zsh alike). */
function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`
}

/** The bash completion script for `commands` (from {@link describeCommands}); `program` is the command's name. */
export function bashScript(commands: readonly CommandSpec[], program = 'mesh'): string {
  const fn = `_${program.replace(/[^A-Za-z0-9_]/g, '_')}`
  const spec = commands.map(c => {
    const valued = c.options.filter(o => o.value !== undefined).flatMap(o => o.names)
    return `    ${quote(c.path.join(' '))}) subs=${quote(c.subcommands.map(s => s.name).join(' '))} opts=${quote(
      c.options.flatMap(o => o.names).join(' '),
    )} valued=${quote(` ${valued.join(' ')} `)} ;;`
  })
  // Each option's value once, under the command that defines it; a subcommand looks it up there.
  const values: string[] = []
  for (const c of commands) {
    for (const o of c.options.slice(0, c.ownOptions)) {
      if (o.value === undefined) continue
      const complete =
        o.value.choices !== undefined
          ? `COMPREPLY=($(compgen -W ${quote(o.value.choices.join(' '))} -- "$cur"))`
          : o.value.kind === 'directory'
            ? `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))`
            : o.value.kind === 'file'
              ? `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))`
              : undefined
      if (complete === undefined) continue
      for (const name of o.names) values.push(`    ${quote(`${c.path.join(' ')}|${name}`)}) ${complete} ;;`)
    }
  }
  // Per command with argument choices: by position, and a variadic last argument for every later one.
  const args: string[] = []
  for (const c of commands) {
    const cases = c.args.flatMap((a, i) => {
      if (a.choices === undefined) return []
      const choices = `choices=${quote(a.choices.join(' '))}`
      return [a.variadic ? `*) (($2 >= ${i})) && ${choices} ;;` : `${i}) ${choices} ;;`]
    })
    if (cases.length > 0) args.push(`    ${quote(c.path.join(' '))}) case $2 in ${cases.join(' ')} esac ;;`)
  }
  return `# bash completion for ${program} ${MESH_VERSION_LINE}, generated by '${program} completion bash'.
# Load it with:  source <(${program} completion bash)
# or install it: ${program} completion bash > /etc/bash_completion.d/${program}

# Sets subs, opts and valued (options that take a value, space-delimited) for a command path.
${fn}_spec() {
  subs= opts= valued=
  case $1 in
${spec.join('\n')}
  esac
}

# Completes the value of option $2 as the command path $1 defines it; status 1 if it does not.
${fn}_value_of() {
  case "$1|$2" in
${values.join('\n')}
    *) return 1 ;;
  esac
}

# Completes the value of option $2 of command path $1 (or of the ancestor that defines the option)
# into COMPREPLY; free text is not guessed.
${fn}_value() {
  local at=$1
  until ${fn}_value_of "$at" "$2"; do
    [[ -z $at ]] && return 0
    if [[ $at == *' '* ]]; then at=\${at% *}; else at=; fi
  done
}

# Sets choices for positional argument $2 (0-based) of command path $1.
${fn}_arg() {
  choices=
  case $1 in
${args.join('\n')}
  esac
}

${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path= word option= expect=0 count=0 i
  local subs opts valued choices
  COMPREPLY=()
  ${fn}_spec ''
  # Find the command being typed: subcommand names, skipping options and their values
  # ('--home DIR', and '--home = DIR' as bash splits '--home=DIR').
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    if ((expect)); then
      [[ $word == = ]] || expect=0
      continue
    fi
    case $word in
      -*)
        option=$word
        [[ $valued == *" $word "* ]] && expect=1
        ;;
      *)
        if ((count == 0)) && [[ " $subs " == *" $word "* ]]; then
          path=\${path:+$path }$word
          ${fn}_spec "$path"
        else
          count=$((count + 1))
        fi
        ;;
    esac
  done
  if ((expect)); then
    [[ $cur == = ]] && cur=
    ${fn}_value "$path" "$option"
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ -n $subs ]] && ((count == 0)); then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  else
    ${fn}_arg "$path" "$count"
    [[ -n $choices ]] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
  fi
  return 0
}

complete -F ${fn} ${program}
`
}

/**
 * Text for a zsh `_arguments` description (`[…]`) or message: brackets, backslashes and colons escaped,
 * and `%` doubled, since zsh expands prompt escapes in what it shows.
 */
function zshText(text: string): string {
  return text.replace(/[\\[\]:]/g, m => `\\${m}`).replaceAll('%', '%%')
}

function zshValueAction(value: NonNullable<OptionSpec['value']>): string {
  if (value.choices !== undefined) return `(${value.choices.join(' ')})`
  if (value.kind === 'directory') return '_files -/'
  if (value.kind === 'file') return '_files'
  return ' ' // a message only: the value is free text
}

function zshOptionSpecs(options: readonly OptionSpec[]): string[] {
  return options.flatMap(o => {
    const exclusive = o.names.length > 1 ? `(${o.names.join(' ')})` : ''
    return o.names.map(name => {
      if (o.value === undefined) return quote(`${exclusive}${name}[${zshText(o.description)}]`)
      // `*`: a value option may be repeated (--listen, --fact); `=`: as `--home DIR` or `--home=DIR`.
      const long = name.startsWith('--') ? '=' : ''
      return quote(
        `*${name}${long}[${zshText(o.description)}]:${zshText(o.value.name)}:${zshValueAction(o.value)}`,
      )
    })
  })
}

/** The zsh completion script (for fpath as `_mesh`, or sourced after `compinit`). */
export function zshScript(commands: readonly CommandSpec[], program = 'mesh'): string {
  const base = `_${program.replace(/[^A-Za-z0-9_]/g, '_')}`
  const fnOf = (path: readonly string[]) =>
    path.length === 0 ? base : `${base}__${path.map(p => p.replace(/[^A-Za-z0-9_]/g, '_')).join('__')}`
  const functions = commands.map(c => {
    const specs = zshOptionSpecs(c.options)
    if (c.subcommands.length > 0) {
      const described = c.subcommands.map(s => quote(`${s.name.replaceAll(':', '\\:')}:${s.description}`))
      const cases = c.subcommands.map(s => `        ${quote(s.name)}) ${fnOf([...c.path, s.name])} ;;`)
      return `${fnOf(c.path)}() {
  local curcontext=$curcontext state line ret=1
  local -a commands
  _arguments -C -s \\
    ${[...specs, "'1: :->command'", "'*:: :->argument'"].join(' \\\n    ')} && ret=0
  case $state in
    command)
      commands=(${described.join(' ')})
      _describe -t commands ${quote(`${[program, ...c.path].join(' ')} command`)} commands && ret=0
      ;;
    argument)
      curcontext=\${curcontext%:*:*}:${[program, ...c.path].join('-')}-$words[1]:
      case $words[1] in
${cases.join('\n')}
      esac
      ;;
  esac
  return ret
}`
    }
    const positional = c.args.map((a, i) => {
      const action = a.choices !== undefined ? `(${a.choices.join(' ')})` : ' '
      return quote(`${a.variadic ? '*' : String(i + 1)}:${zshText(a.name)}:${action}`)
    })
    return `${fnOf(c.path)}() {
  _arguments -s \\
    ${[...specs, ...positional].join(' \\\n    ')}
}`
  })
  return `#compdef ${program}
# zsh completion for ${program} ${MESH_VERSION_LINE}, generated by '${program} completion zsh'.
# Install it:  ${program} completion zsh > "\${fpath[1]}/_${program}"   (then restart zsh or run compinit)
# or load it:  source <(${program} completion zsh)                  (after compinit)

${functions.join('\n\n')}

if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  ${base} "$@"
else
  compdef ${base} ${program}
fi
`
}

/** `mesh completion SHELL`: prints the script for SHELL, made from `program`. */
export function completion(io: CliIo, program: Command, shell: string): number {
  if (!(COMPLETION_SHELLS as readonly string[]).includes(shell))
    throw new UsageError(`no completion for '${shell}': choose one of ${COMPLETION_SHELLS.join(', ')}`)
  const commands = describeCommands(program)
  const name = program.name()
  io.stdout.write(shell === 'bash' ? bashScript(commands, name) : zshScript(commands, name))
  return 0
}
