// Proves that a damaged state file never crashes the agent nor leaves the operator guessing: every file
// of a home (keys, certificates, mesh.ca, the CA's files, revocations, roster, zone roster, authority
// epochs, run record, config.toml) is in turn emptied, truncated at seeded random lengths, given flipped
// bytes (the last one too: in a signature), replaced by another file's bytes or by text, by a directory
// and by a FIFO (which once hung the start), and `mesh agent` is run in this process (the CLI as bin/
// runs it; a home that loads is probed with a bad MESH_LISTEN so that it stops before the network, and
// started for real once per file). It either refuses with exactly one line on stderr, `mesh: …`, that
// names the file and says what to do (never "internal error", never a stack trace, no chmod advice for
// something that is not a file), or it starts: then either the damage was invisible to the format (a
// flipped bit inside the ticket secret or a run-record key: no checksums) or the file is one the mesh
// gives back (revocations, roster, zone roster, epochs) and the loader names it for the agent to log.
// MESH_SEED replays one run.
import { execFileSync } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  homePaths,
  loadHome,
  parseConfigFile,
  saveAuthorityEpochs,
  saveRoster,
  saveRunRecord,
} from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { startAgent } from '../../src/agent/runtime.js'
import { decodeIssuerState } from '../../src/ca/issuer-state.js'
import { decodeTicketSecretFile } from '../../src/ca/key-file.js'
import { createCli } from '../../src/cli.js'
import { createRunLedger, decodeRunLedger, encodeRunLedger } from '../../src/gossip/run-ledger.js'
import { decodeEpochs, encodeEpochs } from '../../src/node/authority-epochs.js'
import { encodeRoster, readRosterFile } from '../../src/node/roster.js'
import { seededRandom } from './harness.js'

const SEED = Number(process.env.MESH_SEED ?? Date.now() % 1_000_000)
const random = seededRandom(SEED)
const LOCAL = '/ip4/127.0.0.1/tcp/0'

/**
 * Each state file, and what may happen when it is damaged: `refuse` (the agent must not start),
 * `may-start` (it may start when the damage is invisible to the format, which `stillReadable` tells),
 * `recover` (it may start and the loader must name the file among its problems unless it still reads).
 */
const FILES: ReadonlyArray<{
  readonly file: string
  readonly when: 'refuse' | 'may-start' | 'recover'
  readonly stillReadable?: (bytes: Uint8Array) => boolean
}> = [
  { file: 'node.key', when: 'refuse' },
  { file: 'node.cert', when: 'refuse' },
  { file: 'mesh.ca', when: 'refuse' },
  { file: 'operator.key', when: 'refuse' },
  { file: 'operator.cert', when: 'refuse' },
  { file: 'ca/ca.key', when: 'refuse' },
  { file: 'ca/ticket.secret', when: 'may-start', stillReadable: readable(b => decodeTicketSecretFile(b)) },
  { file: 'ca/issuer.state', when: 'may-start', stillReadable: readable(b => decodeIssuerState(b)) },
  { file: 'run-record', when: 'may-start', stillReadable: readable(b => decodeRunLedger(b)) },
  { file: 'config.toml', when: 'may-start', stillReadable: readable(b => parseConfigFile(b, 'x')) },
  { file: 'revocations', when: 'recover' },
  { file: 'zone-roster', when: 'recover' },
  { file: 'roster', when: 'recover', stillReadable: b => readRosterFile(b).problem === undefined },
  { file: 'authority-epochs', when: 'recover', stillReadable: b => decodeEpochs(b) !== undefined },
]

function readable(decode: (bytes: Uint8Array) => unknown): (bytes: Uint8Array) => boolean {
  return bytes => {
    try {
      decode(bytes)
      return true
    } catch {
      return false
    }
  }
}

/** How a file is damaged: `bytes` written in its place, or a directory or FIFO put there. */
interface Damage {
  readonly what: string
  readonly bytes?: Uint8Array
  apply(path: string): Promise<void>
}

function withBytes(what: string, bytes: Uint8Array): Damage {
  return {
    what,
    bytes,
    async apply(path) {
      await rm(path, { recursive: true, force: true })
      await writeFile(path, bytes, { mode: 0o600 })
    },
  }
}

function damagesOf(original: Uint8Array, other: Uint8Array): Damage[] {
  const out: Damage[] = [withBytes('empty', new Uint8Array(0))]
  for (let n = 0; n < 2; n++) {
    const length = 1 + random.int(Math.max(1, original.byteLength - 1))
    out.push(withBytes(`truncated to ${length} bytes`, original.slice(0, length)))
  }
  for (let n = 0; n < 2; n++) {
    const flipped = original.slice()
    const at = random.int(flipped.byteLength)
    const mask = 1 + random.int(255)
    flipped[at] = flipped[at]! ^ mask
    out.push(withBytes(`byte ${at} xor ${mask}`, flipped))
  }
  const lastFlipped = original.slice()
  lastFlipped[lastFlipped.byteLength - 1] = lastFlipped[lastFlipped.byteLength - 1]! ^ 1
  out.push(withBytes('last byte xor 1 (in a signature, where there is one)', lastFlipped))
  out.push(withBytes("another file's bytes", other))
  out.push(withBytes('text', new TextEncoder().encode('{"not": "a mesh file"}\n')))
  out.push({
    what: 'a directory',
    async apply(path) {
      await rm(path, { recursive: true, force: true })
      await mkdir(path, { mode: 0o700 })
    },
  })
  if (process.platform !== 'win32') {
    out.push({
      what: 'a FIFO',
      async apply(path) {
        await rm(path, { recursive: true, force: true })
        execFileSync('mkfifo', ['-m', '600', path])
      },
    })
  }
  return out
}

let root: string
let base: string
let cases = 0
const started: string[] = []

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mesh-corrupt-'))
  base = join(root, 'base')
  const nowMs = Date.now()
  await initHome(base, { name: 'n1', zone: 'z', listen: [LOCAL] }, nowMs)
  // The files an agent writes as it runs, each with valid content.
  await saveRoster(base, encodeRoster([{ peerId: 'peer-a', zone: 'z', notAfterMs: nowMs + 3_600_000 }]))
  await saveAuthorityEpochs(base, encodeEpochs(new Map([['z', 3]])))
  const ledger = createRunLedger()
  ledger.enter(`${'ab'.repeat(16)}:${'cd'.repeat(16)}`, nowMs + 3_600_000, nowMs)
  await saveRunRecord(base, encodeRunLedger(ledger.entries(nowMs)))
})

afterAll(async () => {
  console.info(
    `corrupt state files (seed ${SEED}): ${cases} damaged homes; the agent started on ${started.length}: ${started.join('; ')}`,
  )
  await rm(root, { recursive: true, force: true })
})

/** Runs `mesh --home HOME agent` in this process, stopped as soon as it runs; exit code and stderr. */
async function runAgent(
  home: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string }> {
  let stderr = ''
  const stop = new AbortController()
  stop.abort()
  const code = await createCli({
    stdout: { write: () => true },
    stderr: { write: (s: string) => (stderr += s) },
    env: { MESH_LOG_LEVEL: 'silent', ...env },
    userHome: root,
    signal: stop.signal,
  }).run(['--home', home, 'agent'])
  return { code, stderr }
}

/** The one line a refusal must be: names the file, says what to do, no internal error or stack. */
function expectClearRefusal(stderr: string, path: string, context: string): void {
  const lines = stderr.split('\n').filter(line => line !== '')
  expect(lines, `${context}: one line on stderr`).toHaveLength(1)
  const line = lines[0]!
  expect(line, context).toMatch(/^mesh: /)
  expect(line, `${context}: names the file`).toContain(path)
  expect(line, context).not.toMatch(/internal error|\n\s+at /)
  // What to do: a fix, or (config.toml) the line and column or the key of the mistake.
  const advice =
    /restore|move it aside|copy it|regular file|mesh join|mesh init|chmod|:\d+:\d+: invalid TOML|invalid configuration: file /
  expect(line, `${context}: says what to do`).toMatch(advice)
}

describe(`a damaged state file (seed ${SEED})`, () => {
  it.each(FILES)('$file: a clear one-line refusal, or a start that names it', async spec => {
    const original = new Uint8Array(await readFile(join(base, spec.file)))
    const other = new Uint8Array(
      await readFile(join(base, spec.file === 'node.cert' ? 'operator.cert' : 'node.cert')),
    )
    const home = join(root, spec.file.replace('/', '-'))
    await cp(base, home, { recursive: true })
    const path = join(home, spec.file)
    let agentStarted = false
    for (const damage of damagesOf(original, other)) {
      cases += 1
      const context = `${spec.file} ${damage.what}`
      await damage.apply(path)
      // Probe with a bad MESH_LISTEN: a home that loads then fails on that variable instead of starting
      // the network, so every damage costs one load. One real start per file shows the agent comes up.
      const probe = await runAgent(home, agentStarted ? { MESH_LISTEN: 'not-a-multiaddr' } : {})
      const loads = probe.code === 0 || (probe.stderr.includes('MESH_LISTEN') && !probe.stderr.includes(path))
      if (!loads) {
        expect(probe.code, `${context}: ${probe.stderr}`).toBe(1)
        expectClearRefusal(probe.stderr, path, context)
        // Not a file at all: chmod would not help, whatever its mode bits say.
        if (damage.bytes === undefined) expect(probe.stderr, context).not.toMatch(/chmod/)
      } else {
        if (probe.code === 0) {
          agentStarted = true
          expect(probe.stderr, `${context}: started, so nothing on stderr`).toBe('')
        }
        started.push(context)
        expect(spec.when, `${context}: the agent started on a damaged ${spec.file}`).not.toBe('refuse')
        const invisible = damage.bytes !== undefined && spec.stillReadable?.(damage.bytes) === true
        if (spec.when === 'may-start') {
          expect(invisible, `${context}: the agent started although the file does not read`).toBe(true)
        } else if (!invisible) {
          // A recoverable file: the loader names it, for the agent to log (the damage again first: a real
          // start may have saved a good copy already).
          await damage.apply(path)
          const { problems } = await loadHome(home)
          expect(problems.join('\n'), `${context}: the loader names the file`).toContain(path)
        }
      }
      await rm(path, { recursive: true, force: true })
      await writeFile(path, original, { mode: 0o600 })
    }
  })

  it('the agent logs each unusable recoverable file as a warning naming it, and starts', async () => {
    const home = join(root, 'logged')
    await cp(base, home, { recursive: true })
    await writeFile(homePaths(home).revocations, new Uint8Array([1, 2, 3]))
    await writeFile(homePaths(home).authorityEpochs, new Uint8Array(0))
    const lines: string[] = []
    const agent = await startAgent({
      home,
      env: {},
      logger: pino({ level: 'warn' }, { write: (s: string) => lines.push(s) }),
    })
    await agent.stop()
    const problems = lines
      .map(line => JSON.parse(line) as { msg: string; problem?: string })
      .filter(entry => entry.msg === 'state file in the home left out')
      .map(entry => entry.problem ?? '')
    expect(problems).toHaveLength(2)
    expect(problems[0]).toContain(`${homePaths(home).revocations} is unusable`)
    expect(problems[1]).toContain(`${homePaths(home).authorityEpochs} is unusable`)
    // The CA gave its list back and saved it: the file is whole again.
    expect((await loadHome(home)).problems.join('\n')).not.toContain(homePaths(home).revocations)
  })
})
