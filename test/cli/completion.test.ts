// Proves `mesh completion bash|zsh`: the scripts are made from the commander program (every command
// `mesh --help` lists is offered, and a command added to a program shows up with its options and
// argument choices), and they complete what a user types. bash: the script is sourced into a real
// bash and its function called with COMP_WORDS/COMP_CWORD as bash's readline fills them (`--home=DIR`
// arrives as three words) for `mesh ex<TAB>`, `mesh exec --ti<TAB>`, subcommands, option values with
// choices, directories for --home. zsh (only where zsh is installed): the script is loaded into an
// interactive zsh on a pseudo-terminal (zsh/zpty) after compinit and TAB is pressed; compadd is
// wrapped to print the matches it is given.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Argument, Command } from 'commander'
import { afterAll, describe, expect, it } from 'vitest'
import { ROLES } from '../../src/ca/types.js'
import { bashScript, COMPLETION_SHELLS, describeCommands, zshScript } from '../../src/cli/completion.js'
import { createCli } from '../../src/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'mesh-completion-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function mesh(...argv: string[]) {
  const out: string[] = []
  const err: string[] = []
  const cli = createCli({
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env: {},
    userHome: '/nonexistent-home',
  })
  const code = await cli.run(argv)
  return { code, out: out.join(''), err: err.join('') }
}

function hasShell(shell: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${shell}`], { encoding: 'utf8' }).status === 0
}

/** `text` as one single-quoted shell word. */
const quote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`

/**
 * Runs every case in one bash: COMP_WORDS as given, the cursor on the last word. Returns each case's
 * COMPREPLY, sorted.
 */
function bashComplete(script: string, cases: readonly (readonly string[])[]): string[][] {
  const file = join(dir, `completion-${Math.random().toString(36).slice(2)}.bash`)
  writeFileSync(file, script)
  const lines = cases.map(
    words =>
      `COMP_WORDS=(${words.map(quote).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _mesh; ` +
      `printf '%s\\n' "<case>" "\${COMPREPLY[@]}"`,
  )
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `source ${quote(file)}\n${lines.join('\n')}`], {
    encoding: 'utf8',
    timeout: 15_000,
  })
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  return r.stdout
    .split('<case>\n')
    .slice(1)
    .map(block =>
      block
        .split('\n')
        .filter(l => l !== '')
        .sort(),
    )
}

describe('mesh completion', () => {
  it('is a usage error for a shell it has no script for', async () => {
    const r = await mesh('completion', 'fish')
    expect(r.code).toBe(2)
    expect(r.err.trim().split('\n')).toHaveLength(1)
    expect(r.err).toContain('fish')
  })

  it('bash: offers every command mesh --help lists', async () => {
    const help = await mesh('--help')
    const listed = help.out
      .split('Commands:\n')[1]!
      .split('\n')
      .map(l => /^ {2}(\S+)/.exec(l)?.[1])
      .filter((n): n is string => n !== undefined)
    expect(listed).toContain('completion')
    const script = (await mesh('completion', 'bash')).out
    const [top] = bashComplete(script, [['mesh', '']])
    expect(top).toEqual([...listed].sort())
  })

  it('bash: mesh ex<TAB>, mesh exec --ti<TAB>, subcommands, values with choices, --home directories', async () => {
    const r = await mesh('completion', 'bash')
    expect(r.code).toBe(0)
    expect(r.out.split('\n')[0]).toMatch(/^# bash completion for mesh /)
    mkdirSync(join(dir, 'homes-a'))
    mkdirSync(join(dir, 'homes-b'))
    writeFileSync(join(dir, 'homes-file'), '')
    const results = bashComplete(r.out, [
      ['mesh', 'ex'],
      ['mesh', 'exec', '--ti'],
      ['mesh', 'ca', 's'],
      ['mesh', '--home', '=', '/tmp', 'ca', 'r'],
      ['mesh', 'exec', 'uptime', '--timeout', '5s', '--zo'],
      ['mesh', 'ticket', 'create', 'web1', '--role', ''],
      ['mesh', 'ticket', 'create', 'web1', '--role', '=', 'op'],
      ['mesh', 'completion', ''],
      ['mesh', 'status', '--home', join(dir, 'homes-')],
      ['mesh', 'exec', '--timeout', ''],
      ['mesh', 'help', 'st'],
    ])
    expect(results).toEqual([
      ['exec'],
      ['--timeout'],
      ['sign'],
      ['reject', 'revoke'],
      ['--zone'],
      [...ROLES].sort(),
      ['operator'],
      [...COMPLETION_SHELLS].sort(),
      [join(dir, 'homes-a'), join(dir, 'homes-b')],
      [], // a duration is free text
      ['status'],
    ])
  })

  it('bash: registers the function for mesh', async () => {
    const file = join(dir, 'registered.bash')
    writeFileSync(file, (await mesh('completion', 'bash')).out)
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `source ${quote(file)}; complete -p mesh`], {
      encoding: 'utf8',
      timeout: 15_000,
    })
    expect(r.stdout.trim()).toBe('complete -F _mesh mesh')
  })

  it('follows the program: a new command, its options and argument choices appear', () => {
    const program = new Command('mesh').option('--home <dir>', 'state directory')
    program
      .command('frobnicate')
      .description('a command added later')
      .option('--wibble <file>', 'a file')
      .option('--level <n>', 'free text')
      .addArgument(new Argument('<mode>').choices(['fast', 'slow']))
      .addArgument(new Argument('[targets...]').choices(['disk', 'net']))
    const specs = describeCommands(program)
    expect(specs.map(s => s.path.join(' '))).toEqual(['', 'frobnicate', 'help'])
    expect(
      bashComplete(bashScript(specs), [
        ['mesh', 'fr'],
        ['mesh', 'frobnicate', '--w'],
        ['mesh', 'frobnicate', ''],
        ['mesh', 'frobnicate', '--level', '3', 's'],
        ['mesh', 'frobnicate', '--h'],
        ['mesh', 'frobnicate', 'fast', ''],
        ['mesh', 'frobnicate', 'fast', 'disk', 'n'],
      ]),
    ).toEqual([
      ['frobnicate'],
      ['--wibble'],
      ['fast', 'slow'],
      ['slow'],
      ['--help', '--home'],
      ['disk', 'net'],
      ['net'],
    ])
    expect(zshScript(specs)).toMatch(/'1:mode:\(fast slow\)' \\\n\s+'\*:targets:\(disk net\)'/)
  })
})

/**
 * Types each line into an interactive zsh on a pseudo-terminal, presses TAB, and returns the matches
 * compadd was given for each (sorted). The driver is itself a zsh script; the markers are typed split
 * (`<ca""se>`) so the terminal's echo of the typed commands never looks like output.
 */
function zshComplete(script: string, lines: readonly string[]): string[][] {
  const file = join(dir, '_mesh')
  writeFileSync(file, script)
  const driver = join(dir, 'driver.zsh')
  writeFileSync(
    driver,
    `zmodload zsh/zpty || exit 3
zpty session zsh -f -i
zpty -w session "PS1='' RPROMPT=''; unsetopt zle_bracketed_paste 2>/dev/null; autoload -Uz compinit; compinit -u -D"
zpty -w session "source \${(q)1}"
zpty -w session 'compadd() { if [[ " $* " == *" -"[OAD]" "* ]]; then builtin compadd "$@"; return; fi; local -a m; builtin compadd -O m "$@"; (( $#m )) && print -rl -- "<ma""tch>"\${^m}; builtin compadd "$@" }'
zpty -w session '__complete() { zle complete-word; print -r -- "<do""ne>" }; zle -N __complete; bindkey "^I" __complete'
shift
for line in "$@"; do
  zpty -w -n session "$line"$'\\t'
  out=
  while zpty -r session chunk; do
    out+=$chunk
    [[ $out == *'<done>'* ]] && break
  done
  print -r -- "<case>"
  print -r -- "$out" | tr -d '\\r' | grep -ao '<match>[^[:cntrl:]]*' | sed 's/^<match>//' | sort -u
  zpty -w -n session $'\\x15'
done
zpty -d session
`,
  )
  const r = spawnSync('zsh', ['-f', driver, file, ...lines], { encoding: 'utf8', timeout: 15_000 })
  expect(r.status).toBe(0)
  return r.stdout
    .split('<case>\n')
    .slice(1)
    .map(block => block.split('\n').filter(l => l !== ''))
}

const zsh = hasShell('zsh')
describe(`mesh completion zsh${zsh ? '' : ' (skipped: zsh is not installed)'}`, () => {
  it.skipIf(!zsh)('completes commands, options and choices in an interactive zsh', async () => {
    const r = await mesh('completion', 'zsh')
    expect(r.code).toBe(0)
    expect(r.out.split('\n')[0]).toBe('#compdef mesh')
    expect(
      zshComplete(r.out, [
        'mesh ex',
        'mesh exec --ti',
        'mesh ca s',
        'mesh --home /tmp ca r',
        'mesh exec --timeout=5s --zo',
        'mesh ticket create web1 --role ',
        'mesh completion ',
      ]),
    ).toEqual([
      ['exec'],
      ['--timeout'],
      ['sign'],
      ['reject', 'revoke'],
      ['--zone'],
      [...ROLES].sort(),
      [...COMPLETION_SHELLS].sort(),
    ])
  })
})
