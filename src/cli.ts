/**
 * The `mesh` command line (contract: docs/cli.md), built as a factory so tests run it in process
 * with injected output. Parsing is commander's; each command's work lives in src/cli/<command>.ts and is
 * imported lazily, so commands that only talk to the local agent never load libp2p. The commands that
 * run a node in this process (init, join, agent, demo) are imported through src/cli/node-commands.ts,
 * which the bundled CLI keeps in a second file (scripts/bundle.mjs): this module and what it imports
 * at load time must stay small, since every `mesh` run parses them (docs/memory.md).
 */
import { join } from 'node:path'
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { ROLES } from './ca/types.js'
import { COMPLETION_SHELLS } from './cli/completion.js'
import { isCliError, UsageError } from './cli/errors.js'
import type { CliIo, GlobalOptions } from './cli/io.js'
import { parseDuration } from './duration.js'
import { MESH_VERSION_LINE } from './version.js'

export { CliError, UsageError } from './cli/errors.js'
export type { CliIo, GlobalOptions, Output } from './cli/io.js'

/** A runnable command line. */
export interface Cli {
  /** Runs one command line (without `node` and script: `['exec', 'uptime']`); resolves to the exit code. */
  run(argv: readonly string[]): Promise<number>
}

/** Parses a duration flag (`500ms`, `10s`, `5m`, `24h`), refusing anything else as a usage error. */
function durationFlag(value: string): number {
  const parsed = parseDuration(value)
  if (!parsed.ok) throw new InvalidArgumentError(parsed.problem)
  if (parsed.ms <= 0)
    throw new InvalidArgumentError(`'${value}' is not a positive duration like 500ms or 10s`)
  return parsed.ms
}

/** Extra `mesh exec --help` text: output formats and the --where grammar (src/gossip/filter.ts). */
const EXEC_HELP = `
Output:
  --json    print one JSON document when done: { id, action, expected, replies, missing }
  --jsonl   print one JSON object per line as events happen, then a summary line

--where EXPR:
  terms     KEY=VALUE, KEY!=VALUE   (KEY: zone, name or a fact name)
  values    exact text, a glob (web*, db?) or a /regex/; quote a value to match it literally
  combine   and, or, not, parentheses (not binds tighter than and, and tighter than or)
  example   --where 'zone=db and not (name=d2 or os=/bsd/)'
`

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** Builds the CLI over `io`. */
export function createCli(io: CliIo): Cli {
  return {
    async run(argv) {
      let exitCode = 0
      const program = buildProgram(io, code => {
        exitCode = code
      })
      try {
        await program.parseAsync([...argv], { from: 'user' })
        return exitCode
      } catch (err) {
        return reportError(io, err)
      }
    },
  }
}

function reportError(io: CliIo, err: unknown): number {
  if (err instanceof CommanderError) {
    // Help and version requests end parsing with a "success" CommanderError.
    if (err.exitCode === 0) return 0
    return 2
  }
  if (isCliError(err)) {
    io.stderr.write(`mesh: ${err.message}\n`)
    return err.exitCode
  }
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  io.stderr.write(`mesh: internal error: ${message}; please report it (run with MESH_DEBUG=1 for details)\n`)
  if (io.env.MESH_DEBUG === '1' && err instanceof Error) io.stderr.write(`${err.stack}\n`)
  return 1
}

function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('mesh')
  program
    .description('Peer-to-peer command and control: signed requests over gossip, no broker.')
    .version(MESH_VERSION_LINE, '-V, --version', 'print the version and build (commit, date)')
    .helpOption('-h, --help', 'show help')
    .addOption(new Option('--home <dir>', 'state directory of this node (default: $MESH_HOME, else ~/.mesh)'))
    .option('--json', 'print one JSON document on stdout')
    .option('--jsonl', 'print one JSON object per line as events happen (where output streams)')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: s => io.stdout.write(s),
      writeErr: s => io.stderr.write(s),
      outputError: (s, write) => {
        const line = s.replace(/^error: /, '').trim()
        write(`mesh: ${line}; see 'mesh --help'\n`)
      },
    })
    .exitOverride()

  const globals = (command: Command): GlobalOptions => {
    const o = command.optsWithGlobals<{ home?: string; json?: boolean; jsonl?: boolean }>()
    const home = o.home ?? nonEmpty(io.env.MESH_HOME) ?? join(io.userHome, '.mesh')
    if (o.json === true && o.jsonl === true) throw new UsageError("choose one of '--json' and '--jsonl'")
    return { home, json: o.json === true, jsonl: o.jsonl === true }
  }
  const run = (load: () => Promise<number | undefined>) => async () => {
    setExit((await load()) ?? 0)
  }

  program
    .command('init')
    .description('start a new mesh in --home: CA, ticket secret, this node and a local operator')
    .requiredOption('--name <name>', 'name of this node')
    .option('--zone <zone>', 'zone of this node', 'core')
    .option('--listen <multiaddr>', 'address to listen on (repeatable)', collect)
    .option('--announce <multiaddr>', 'address to announce to peers (repeatable)', collect)
    .option(
      '--network-key',
      'also create a pre-shared network key (pnet): only holders of a copy can connect',
    )
    .action(async (opts, command: Command) => {
      await run(async () => (await import('./cli/node-commands.js')).init(io, globals(command), opts))()
    })

  program
    .command('agent')
    .description('run this node in the foreground until SIGINT, SIGTERM or SIGHUP')
    .action(async (_opts, command: Command) => {
      await run(async () => (await import('./cli/node-commands.js')).agent(io, globals(command)))()
    })

  const ticket = program.command('ticket').description('join tickets')
  ticket
    .command('create <name>')
    .description('print a one-line, single-use join ticket for NAME')
    .requiredOption('--zone <zone>', 'zone granted to the new node')
    .addOption(
      new Option('--role <role>', 'role granted (repeatable)')
        .choices(ROLES)
        .argParser((v: string, prev: string[] | undefined) => {
          if (!(ROLES as readonly string[]).includes(v)) {
            throw new InvalidArgumentError(`'${v}' is not one of ${ROLES.join(', ')}`)
          }
          return collect(v, prev)
        }),
    )
    .addOption(
      new Option('--ttl <duration>', 'how long the ticket stays valid')
        .argParser(durationFlag)
        .default(86_400_000, '24h'),
    )
    .action(async (name: string, opts, command: Command) => {
      await run(async () =>
        (await import('./cli/ticket.js')).ticketCreate(io, globals(command), name, opts),
      )()
    })

  program
    .command('join')
    .description('make --home a member of a mesh')
    .option('--ticket <ticket>', 'a ticket from `mesh ticket create`')
    .option('--bootstrap <multiaddr>', 'a member to dial (without a ticket; repeatable)', collect)
    .option('--fingerprint <fp>', 'the mesh fingerprint to expect (without a ticket)')
    .option('--name <name>', 'requested name (without a ticket)')
    .option('--zone <zone>', 'requested zone (without a ticket)')
    .option('--listen <multiaddr>', 'address to listen on (repeatable)', collect)
    .option('--announce <multiaddr>', 'address to announce to peers (repeatable)', collect)
    .option('--timeout <duration>', 'how long to wait for the certificate', durationFlag)
    .option('--verbose', 'print a progress line per attempt to stderr (always on a TTY)')
    .option('--network-key <file>', "the mesh's pre-shared network key (if it uses one); copied into --home")
    .action(async (opts, command: Command) => {
      await run(async () => (await import('./cli/node-commands.js')).join(io, globals(command), opts))()
    })

  const ca = program.command('ca').description('certificate authority: signing requests and revocation')
  ca.command('list')
    .description('pending signing requests')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/ca.js')).caList(io, globals(command)))()
    })
  ca.command('holders')
    .description('the CA holders, the current issuer and its epoch')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/ca.js')).caHolders(io, globals(command)))()
    })
  ca.command('add-holder <name>')
    .description('make the member NAME a CA holder: hand it the CA key and state (docs/ca-ha.md)')
    .action(async (name: string, _o, command: Command) => {
      await run(async () => (await import('./cli/ca.js')).caAddHolder(io, globals(command), name))()
    })
  ca.command('sign <id>')
    .description('issue the certificate of a pending request')
    .action(async (id: string, _o, command: Command) => {
      await run(async () => (await import('./cli/ca.js')).caDecide(io, globals(command), 'sign', id))()
    })
  ca.command('reject [id]')
    .description('refuse a pending request, all of them (--all) or all from one requester (--requester)')
    .option('--all', 'reject every pending request')
    .option('--requester <name>', "reject every pending request of one requester (see 'mesh ca list')")
    .action(async (id: string | undefined, o: { all?: boolean; requester?: string }, command: Command) => {
      await run(async () =>
        (await import('./cli/ca.js')).caReject(io, globals(command), {
          ...(id !== undefined ? { id } : {}),
          ...(o.all === true ? { all: true } : {}),
          ...(o.requester !== undefined ? { requester: o.requester } : {}),
        }),
      )()
    })
  ca.command('revoke <nameOrSerial>')
    .description('revoke a member across the mesh')
    .action(async (target: string, _o, command: Command) => {
      await run(async () => (await import('./cli/ca.js')).caRevoke(io, globals(command), target))()
    })

  const api = program.command('api').description('the HTTP/JSON API (apiListen)')
  api
    .command('token')
    .description('print the API bearer token, creating it in --home if needed')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/api.js')).apiToken(io, globals(command)))()
    })

  program
    .command('status')
    .description('this node: identity, addresses, certificate expiry, request counters')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/status.js')).status(io, globals(command)))()
    })

  program
    .command('members')
    .description('members of the mesh as this node sees them')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/members.js')).members(io, globals(command)))()
    })

  program
    .command('proposals')
    .description('proposals (two-person rule) this node knows')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/proposals.js')).proposals(io, globals(command)))()
    })
  program
    .command('approve <id>')
    .description("add this operator's signature to a proposal")
    .action(async (id: string, _o, command: Command) => {
      await run(async () => (await import('./cli/proposals.js')).approve(io, globals(command), id))()
    })

  const jobs = program
    .command('jobs')
    .description('recent jobs this node ran or issued')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/jobs.js')).jobsList(io, globals(command)))()
    })
  jobs
    .command('show <id>')
    .description("a job's results, fetched from the mesh if this node did not issue it")
    .option('--mesh', 'ask the nodes for what they stored even for a job issued here')
    .action(async (id: string, o: { mesh?: boolean }, command: Command) => {
      await run(async () => (await import('./cli/jobs.js')).jobsShow(io, globals(command), id, o))()
    })
  jobs
    .command('wait <id>')
    .description('wait until every expected node answered (or --timeout), then print the results')
    .addOption(
      new Option('--timeout <duration>', 'how long to wait').argParser(durationFlag).default(60_000, '60s'),
    )
    .action(async (id: string, o: { timeout: number }, command: Command) => {
      await run(async () => (await import('./cli/jobs.js')).jobsWait(io, globals(command), id, o.timeout))()
    })

  program
    .command('audit')
    .description("this node's audit log: requests validated, actions run, admissions, revocations")
    .option('--since <duration>', 'only records of the last DURATION', durationFlag)
    .option('--verify', 'check the chain and signatures; name the first broken record')
    .option('--dir <dir>', 'with --verify: check a copy of an audit directory here, without an agent')
    .option('--cert <file>', "with --dir: the certificate of the node whose log it is (default: --home's)")
    .action(async (opts, command: Command) => {
      await run(async () => (await import('./cli/audit.js')).audit(io, globals(command), opts))()
    })

  program
    .command('zones')
    .description('zones, their members and authorities')
    .action(async (_o, command: Command) => {
      await run(async () => (await import('./cli/members.js')).zones(io, globals(command)))()
    })

  program
    .command('exec <action> [args...]')
    .description('run ACTION on every node that matches all filters')
    .option('--zone <zone>', 'only nodes of this zone')
    .option('--node <glob>', 'only nodes whose name matches')
    .option('--fact <key=value>', 'only nodes with this fact (exact, glob or /regex/; repeatable)', collect)
    .option('--where <expr>', "filter expression, e.g. 'zone=db and not name=d2'")
    .option('--once', 'run only on the zone authority')
    .addOption(
      new Option('--timeout <duration>', 'how long to wait for replies')
        .argParser(durationFlag)
        .default(10_000, '10s'),
    )
    .option('--batch <n|n%>', 'run in waves of this many nodes (or percent of them), one after the other')
    .option('--batch-sleep <duration>', 'pause between waves', durationFlag)
    .option('--max-failures <n|n%>', 'start no further wave once more nodes than this failed or went missing')
    .option('--limit <n|n%>', 'run on a random subset of this size of the matching nodes')
    .option('--limit-seed <seed>', 'make the --limit choice reproducible')
    .option('--one', 'run on one matching node (--limit 1)')
    .option('--display <which>', 'replies to show: ok, failed, all (default) or none')
    .option('--table', 'print the replies as a table sorted by node name')
    .option('--async', "print the job id and return at once; results with 'mesh jobs wait ID'")
    .option('--propose', 'sign a proposal for other operators to approve (two-person rule); runs nothing')
    .option(
      '--retarget <job:outcome>',
      'run on exactly the nodes of an earlier job that were ok, failed or missing',
    )
    .addHelpText('after', EXEC_HELP)
    .action(async (action: string, args: string[], opts, command: Command) => {
      await run(async () => (await import('./cli/exec.js')).exec(io, globals(command), action, args, opts))()
    })

  program
    .command('demo')
    .description('start a local demo mesh on 127.0.0.1 and run a request across it')
    .option('--nodes <count>', 'number of nodes', integerFlag, 5)
    .option('--exit', 'stop after the first request instead of waiting for Ctrl-C')
    .action(async (opts, command: Command) => {
      await run(async () => (await import('./cli/node-commands.js')).demo(io, globals(command), opts))()
    })

  program
    .command('completion')
    .description('print a completion script for bash or zsh: source <(mesh completion bash)')
    .addArgument(new Argument('<shell>', 'the shell').choices(COMPLETION_SHELLS))
    .action(async (shell: string) => {
      await run(async () => (await import('./cli/completion.js')).completion(io, program, shell))()
    })

  return program
}

/** Parses a whole-number flag; the command checks its range (so the range has one owner). */
function integerFlag(value: string): number {
  const n = /^\s*-?\d+\s*$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`'${value}' is not an integer`)
  return n
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
