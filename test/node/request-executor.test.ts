/**
 * Proves the request executor carries out the real validation pipeline's outcomes: it builds really
 * signed requests (fabricated certificates, test/gossip/fixtures.ts), feeds them through a real
 * validator and records what a fake router is asked to remember and send and what a fake action
 * registry is asked to run. Every reply sent is verified and decoded: a request issued before
 * `markStarted` is acked and answered `error` without running (and counted), a valid one is acked then
 * completed from the action's result, a denied one is acked then `denied`, refusals run and send
 * nothing, and `outcomes()` are the pipeline's own counters with zeros left out.
 * The run record: a request is entered and stored before its action starts (the action waits for the
 * save), one whose key an earlier executor stored is acked and answered `error` "already ran" without
 * running, a full record answers `error` `overloaded` and a failed save `error`, none of them run, and
 * "running request" is logged only for a request whose action really starts.
 */
import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { DEFAULT_POLICY } from '../../src/gossip/authorize.js'
import type { FilterSubject } from '../../src/gossip/filter.js'
import { createReplayCache } from '../../src/gossip/replay.js'
import { type Reply, verifyReply } from '../../src/gossip/reply.js'
import { createRequest, type RequestInit } from '../../src/gossip/request.js'
import { createRequestValidator } from '../../src/gossip/validate.js'
import type { ActionResult, ActionRunOptions } from '../../src/node/actions/types.js'
import { createManualClock, type ManualClock } from '../../src/node/clock.js'
import { type Logger, silentLogger } from '../../src/node/log.js'
import {
  createRequestExecutor,
  REASON_ALREADY_RAN,
  REASON_EXPIRED_BEFORE_START,
  REASON_RUN_RECORD_FULL,
  REASON_RUN_RECORD_UNSAVED,
} from '../../src/node/request-executor.js'
import { createRunRecord, type RunRecord } from '../../src/node/run-record.js'
import { toHex } from '../../src/wire/hash.js'
import { FakeCa, testId } from '../gossip/fixtures.js'

const NOW = 1_800_000_000_000
const SKEW = 2_000
const LIFETIME_MAX = 60_000

/** Lets queued microtasks and the fake action's promise run. */
const flush = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

const okResult: ActionResult = {
  status: 'ok',
  exitCode: 0,
  output: 'up 3 days',
  outputBytes: 9,
  truncated: false,
  timedOut: false,
  durationMs: 12,
}

function setup(
  opts: {
    authority?: { epoch: number } | null
    /** A run record of the caller's (e.g. a stored one); default one in memory on this setup's clock. */
    runRecord?: (clock: ManualClock) => RunRecord
    log?: Logger
  } = {},
) {
  const ca = new FakeCa()
  const operator = ca.issue('alice', { roles: ['operator'] })
  const node = ca.issue('web1', { zone: 'web', roles: ['agent'] })
  const clock = createManualClock(NOW)
  const self: FilterSubject = { name: 'web1', zone: 'web', facts: { os: 'linux' }, authority: true }
  const validator = createRequestValidator(
    {
      verifier: ca.verifier,
      replay: createReplayCache({ clockSkewToleranceMs: SKEW, entriesMax: 100 }),
      self: () => self,
      policy: () => DEFAULT_POLICY,
    },
    { clockSkewToleranceMs: SKEW, requestLifetimeMsMax: LIFETIME_MAX },
  )
  const remembered: { id: string; upstream: string | undefined; peerId: string; untilMs: number }[] = []
  const sent: { id: string; reply: Reply }[] = []
  const router = {
    settle: async () => {},
    remember: (id: string, upstream: string | undefined, replyTo: { peerId: string }, untilMs: number) => {
      remembered.push({ id, upstream, peerId: replyTo.peerId, untilMs })
    },
    send: (id: string, bytes: Uint8Array) => {
      const verdict = verifyReply(bytes, { verifier: ca.verifier, nowMs: clock.nowMs() })
      if (!verdict.ok) throw new Error(`sent an invalid reply: ${verdict.reason}`)
      expect(verdict.verified.requestIdHex).toBe(id)
      sent.push({ id, reply: verdict.verified.reply })
    },
  }
  const run = vi.fn(
    async (_name: string, _args: readonly string[], _options?: ActionRunOptions): Promise<ActionResult> =>
      okResult,
  )
  const executor = createRequestExecutor(
    {
      validator,
      router: router as unknown as Parameters<typeof createRequestExecutor>[0]['router'],
      actions: { run, has: (name: string) => name !== 'uptim' },
      signer: node,
      heldAuthority: () => (opts.authority === undefined ? null : opts.authority),
      clock,
      log: opts.log ?? silentLogger(),
      runRecord: opts.runRecord?.(clock) ?? createRunRecord({ clock }, { clockSkewToleranceMs: SKEW }),
    },
    { clockSkewToleranceMs: SKEW },
  )
  let nextId = 1
  const request = (over: Partial<RequestInit> = {}): Uint8Array =>
    createRequest({
      id: testId(nextId++),
      issuer: operator.certificate.bytes,
      key: operator.key,
      issuedAtMs: NOW,
      expiresAtMs: NOW + 30_000,
      filter: { zone: 'web' },
      action: 'uptime',
      args: ['-p'],
      replyTo: { peerId: '12D3KooRequester', addrs: ['/ip4/127.0.0.1/tcp/4001'] },
      ...over,
    }).bytes
  const kinds = () => sent.map(s => (s.reply.kind === 'done' ? `done:${s.reply.status}` : 'ack'))
  return { ca, clock, validator, executor, request, remembered, sent, run, kinds }
}

const idHex = (n: number) => toHex(testId(n))

describe('request executor', () => {
  it('answers a request issued before markStarted with error, unrun, and counts it', async () => {
    const { executor, request, sent, run, kinds } = setup()
    // Not started at all yet: everything is "before start".
    expect(executor.handle(request(), 'peerA').kind).toBe('accept-execute')
    executor.markStarted(NOW + 1)
    expect(executor.handle(request({ issuedAtMs: NOW }), 'peerA').kind).toBe('accept-execute')
    await flush()
    expect(kinds()).toEqual(['ack', 'done:error', 'ack', 'done:error'])
    const done = sent[1]?.reply
    expect(done).toMatchObject({ kind: 'done', status: 'error', exitCode: null, output: '' })
    expect(done?.kind === 'done' ? done.reason : '').toMatch(/before this agent \(re\)started/)
    expect(run).not.toHaveBeenCalled()
    expect(executor.notRunBeforeStart()).toBe(2)
  })

  it('runs a valid request: remembers the route, acks, then completes from the action', async () => {
    const { executor, request, sent, run, kinds, remembered } = setup()
    executor.markStarted(NOW) // a request issued exactly at start does run
    expect(executor.handle(request(), 'peerA').kind).toBe('accept-execute')
    expect(remembered).toEqual([
      { id: idHex(1), upstream: 'peerA', peerId: '12D3KooRequester', untilMs: NOW + 30_000 + SKEW },
    ])
    await flush()
    expect(kinds()).toEqual(['ack', 'done:ok'])
    expect(sent.every(s => s.id === idHex(1))).toBe(true)
    expect(sent[1]?.reply).toMatchObject({
      status: 'ok',
      exitCode: 0,
      output: 'up 3 days',
      durationMs: 12,
      node: 'web1',
      zone: 'web',
    })
    expect(run).toHaveBeenCalledTimes(1)
    expect(run).toHaveBeenCalledWith('uptime', ['-p'], {
      timeoutMs: 30_000, // the request's remaining lifetime
      request: { id: idHex(1), operator: 'alice' },
      onOutput: expect.any(Function), // live output (live-output.ts)
    })
    expect(executor.notRunBeforeStart()).toBe(0)
  })

  it('does not start a request whose deadline has passed by its turn, answering error expired', async () => {
    const { executor, request, sent, run, kinds } = setup()
    executor.markStarted(NOW - 10_000)
    // Accepted within the skew tolerance, but already past its deadline here.
    expect(
      executor.handle(request({ issuedAtMs: NOW - 5_000, expiresAtMs: NOW - 1_000 }), undefined).kind,
    ).toBe('accept-execute')
    await flush()
    expect(run).not.toHaveBeenCalled()
    expect(kinds()).toEqual(['ack', 'done:error'])
    expect(sent[1]?.reply).toMatchObject({ status: 'error', reason: REASON_EXPIRED_BEFORE_START })
  })

  it('sends the ack before the action finishes', async () => {
    const { executor, request, run, kinds } = setup()
    let finish!: (r: ActionResult) => void
    run.mockImplementationOnce(() => new Promise(resolve => (finish = resolve)))
    executor.markStarted(NOW)
    executor.handle(request(), undefined)
    await flush()
    expect(kinds()).toEqual(['ack'])
    finish({ ...okResult, status: 'failed', exitCode: 3 })
    await flush()
    expect(kinds()).toEqual(['ack', 'done:failed'])
  })

  it('acks then denies a request the policy refuses, without running it', async () => {
    const { executor, request, sent, run, kinds } = setup()
    executor.markStarted(NOW)
    expect(executor.handle(request({ action: 'shell', args: ['id'] }), 'peerA').kind).toBe('accept-denied')
    await flush()
    expect(kinds()).toEqual(['ack', 'done:denied'])
    const done = sent[1]?.reply
    expect(done?.kind === 'done' ? done.reason : '').toMatch(/shell/)
    expect(run).not.toHaveBeenCalled()
  })

  it('neither runs nor answers refusals, and reports their gossipsub verdict', async () => {
    const { executor, request, sent, run, remembered } = setup()
    executor.markStarted(NOW)
    const good = request()
    const expired = request({ issuedAtMs: NOW - 40_000, expiresAtMs: NOW - 10_000 })
    expect(executor.verdict(new Uint8Array([1, 2, 3]), 'peerA')).toEqual({
      kind: 'refused',
      code: 'malformed',
      action: 'reject',
    })
    expect(executor.verdict(expired, 'peerA')).toMatchObject({ kind: 'refused', code: 'expired' })
    expect(executor.verdict(good, 'peerA')).toEqual({ kind: 'accept', code: 'accept-execute' })
    expect(executor.verdict(good, 'peerB')).toMatchObject({ kind: 'refused', code: 'replayed' })
    await flush()
    expect(run).toHaveBeenCalledTimes(1) // the good one, once
    expect(sent).toHaveLength(2)
    expect(remembered).toHaveLength(1)
  })

  it('forwards a request not for us (route remembered) without running or answering it', async () => {
    const { executor, request, sent, run, remembered } = setup()
    executor.markStarted(NOW)
    expect(executor.handle(request({ filter: { zone: 'db' } }), 'peerA').kind).toBe('accept-not-for-us')
    await flush()
    expect(remembered).toHaveLength(1)
    expect(sent).toEqual([])
    expect(run).not.toHaveBeenCalled()
  })

  it('runs a once request only while holding the authority, stamping the epoch', async () => {
    const held = setup({ authority: { epoch: 7 } })
    held.executor.markStarted(NOW)
    held.executor.handle(held.request({ filter: { zone: 'web', once: true } }), undefined)
    await flush()
    expect(held.sent[1]?.reply).toMatchObject({ status: 'ok', epoch: 7 })

    const lost = setup({ authority: null })
    lost.executor.markStarted(NOW)
    expect(lost.executor.handle(lost.request({ filter: { zone: 'web', once: true } }), undefined).kind).toBe(
      'accept-execute',
    )
    await flush()
    expect(lost.kinds()).toEqual(['ack', 'done:error'])
    expect(lost.run).not.toHaveBeenCalled()
    expect(lost.executor.notRunBeforeStart()).toBe(0)
  })

  it('reports the pipeline counters as outcomes, zeros left out', async () => {
    const { executor, request, validator } = setup()
    expect(executor.outcomes()).toEqual({})
    executor.markStarted(NOW)
    executor.handle(request(), undefined)
    executor.handle(request(), undefined)
    executor.handle(request({ action: 'shell', args: ['id'] }), undefined)
    executor.handle(new Uint8Array([0xff]), 'peerA')
    await flush()
    const outcomes = executor.outcomes()
    expect(outcomes).toEqual({ 'accept-execute': 2, 'accept-denied': 1, malformed: 1 })
    const nonZero = Object.entries(validator.counters).filter(([, n]) => n > 0)
    expect(outcomes).toEqual(Object.fromEntries(nonZero))
    // The before-start refusal is the executor's own count, not a pipeline outcome.
    expect(Object.keys(outcomes)).not.toContain('not-run-before-start')
  })

  it('answers an unknown action with error unknown-action before policy, without running it', async () => {
    const { executor, request, sent, run, kinds } = setup()
    executor.markStarted(NOW)
    // 'uptim' is not in the registry; the default policy would deny it, yet the answer is "no such action".
    expect(executor.handle(request({ action: 'uptim', args: [] }), 'peerA').kind).toBe('accept-denied')
    await flush()
    expect(kinds()).toEqual(['ack', 'done:error'])
    const done = sent[1]?.reply
    expect(done?.kind === 'done' ? done.reason : '').toBe("unknown-action: this node has no action 'uptim'")
    expect(done?.kind === 'done' ? done.reason : '').not.toMatch(/policy/)
    expect(run).not.toHaveBeenCalled()
    expect(executor.unknownActions()).toBe(1)
  })

  it.each([
    ['closed', /node is stopping/],
    ['aborted', /run was cancelled/],
  ] as const)('answers a run ended by %s as cancelled', async (errorCode, reason) => {
    const { executor, request, sent, run, kinds } = setup()
    run.mockResolvedValueOnce({ ...okResult, status: 'error', exitCode: null, output: '', errorCode })
    executor.markStarted(NOW)
    executor.handle(request(), 'peerA')
    await flush()
    expect(kinds()).toEqual(['ack', 'done:cancelled'])
    const done = sent[1]?.reply
    expect(done?.kind === 'done' ? done.reason : '').toMatch(reason)
  })

  it('drain waits for a running action to send its done, and is bounded', async () => {
    const { executor, request, run, kinds } = setup()
    let finish!: (r: ActionResult) => void
    run.mockImplementationOnce(() => new Promise(resolve => (finish = resolve)))
    executor.markStarted(NOW)
    executor.handle(request(), 'peerA')
    await flush()
    let drained = false
    const draining = executor.drain(2_000).then(() => (drained = true))
    await flush()
    expect(drained).toBe(false)
    finish({ ...okResult, status: 'error', exitCode: null, errorCode: 'closed' })
    await draining
    expect(kinds()).toEqual(['ack', 'done:cancelled'])

    // A run that never ends: drain gives up at its bound (the manual clock's timers fire on advance).
    const stuck = setup()
    stuck.run.mockImplementationOnce(() => new Promise(() => {}))
    stuck.executor.markStarted(NOW)
    stuck.executor.handle(stuck.request(), 'peerA')
    await flush()
    let gaveUp = false
    const bounded = stuck.executor.drain(2_000).then(() => (gaveUp = true))
    await flush()
    stuck.clock.advance(1_999)
    await flush()
    expect(gaveUp).toBe(false)
    stuck.clock.advance(1)
    await bounded
    expect(gaveUp).toBe(true)
  })

  describe('run record', () => {
    /** A store that keeps the saved bytes in memory, as a file would across a restart. */
    const memoryStore = () => {
      const store = {
        bytes: undefined as Uint8Array | undefined,
        saves: 0,
        load: async () => store.bytes,
        save: async (bytes: Uint8Array) => {
          store.saves += 1
          store.bytes = bytes
        },
      }
      return store
    }
    const reasonOf = (reply: Reply | undefined): string =>
      reply?.kind === 'done' ? (reply.reason ?? '') : ''

    it('does not run a request an earlier executor stored, answering error already ran', async () => {
      const store = memoryStore()
      const record = (clock: ManualClock) =>
        createRunRecord({ load: store.load, save: store.save, clock }, { clockSkewToleranceMs: SKEW })
      const before = setup({ runRecord: record })
      await before.executor.start(NOW - 1_000)
      // Issued 1.5 s ahead of the target's clock: inside the 2 s skew budget of the validity window.
      const bytes = before.request({ issuedAtMs: NOW + 1_500, expiresAtMs: NOW + 31_500 })
      expect(before.executor.handle(bytes, 'peerA').kind).toBe('accept-execute')
      await flush()
      expect(before.kinds()).toEqual(['ack', 'done:ok'])
      expect(store.saves).toBe(1)

      // "Restart" before issuedAtMs: a new executor, validator and replay cache over the same store.
      const lines: string[] = []
      const after = setup({
        runRecord: record,
        log: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
      })
      await after.executor.start(NOW + 500) // started before the request's issuedAtMs
      expect(after.executor.handle(bytes, 'peerA').kind).toBe('accept-execute')
      await flush()
      expect(after.kinds()).toEqual(['ack', 'done:error'])
      expect(reasonOf(after.sent[1]?.reply)).toBe(REASON_ALREADY_RAN)
      expect(after.run).not.toHaveBeenCalled()
      expect(after.executor.notRunBeforeStart()).toBe(0)
      expect(after.executor.runRecordCounters()).toMatchObject({ entries: 1, alreadyRan: 0 })
      expect(lines.some(line => line.includes('running request'))).toBe(false)
      expect(lines.some(line => line.includes('already ran before this agent restarted'))).toBe(true)
    })

    it('starts the action only after the record holding its key is saved', async () => {
      let release!: () => void
      const saved: Uint8Array[] = []
      const record = (clock: ManualClock) =>
        createRunRecord(
          {
            load: async () => undefined,
            save: bytes =>
              new Promise<void>(resolve => {
                saved.push(bytes)
                release = resolve
              }),
            clock,
          },
          { clockSkewToleranceMs: SKEW },
        )
      const { executor, request, run, kinds } = setup({ runRecord: record })
      await executor.start(NOW)
      executor.handle(request(), 'peerA')
      await flush()
      expect(saved).toHaveLength(1)
      expect(run).not.toHaveBeenCalled() // the save has not resolved yet
      expect(kinds()).toEqual(['ack'])
      release()
      await flush()
      expect(run).toHaveBeenCalledTimes(1)
      expect(kinds()).toEqual(['ack', 'done:ok'])
    })

    it('answers error overloaded when the record is full of live entries, and counts it', async () => {
      const record = (clock: ManualClock) =>
        createRunRecord({ clock }, { clockSkewToleranceMs: SKEW, entriesMax: 1 })
      const { executor, request, sent, run, kinds } = setup({ runRecord: record })
      executor.markStarted(NOW)
      executor.handle(request(), 'peerA')
      executor.handle(request(), 'peerA')
      await flush()
      // The second is refused at once; the first's done follows its (awaited) action.
      expect(kinds().sort()).toEqual(['ack', 'ack', 'done:error', 'done:ok'])
      const refused = sent.find(s => s.reply.kind === 'done' && s.reply.status === 'error')
      expect(refused?.id).toBe(idHex(2))
      expect(reasonOf(refused?.reply)).toBe(REASON_RUN_RECORD_FULL)
      expect(reasonOf(refused?.reply)).toMatch(/^overloaded/)
      expect(run).toHaveBeenCalledTimes(1)
      expect(executor.runRecordCounters()).toMatchObject({ entries: 1, entered: 1, full: 1 })
    })

    it('does not run a request whose entry could not be saved', async () => {
      const record = (clock: ManualClock) =>
        createRunRecord(
          {
            load: async () => undefined,
            save: async () => {
              throw new Error('disk full')
            },
            clock,
          },
          { clockSkewToleranceMs: SKEW },
        )
      const { executor, request, sent, run, kinds } = setup({ runRecord: record })
      await executor.start(NOW)
      executor.handle(request(), 'peerA')
      await flush()
      expect(kinds()).toEqual(['ack', 'done:error'])
      expect(reasonOf(sent[1]?.reply)).toBe(REASON_RUN_RECORD_UNSAVED)
      expect(run).not.toHaveBeenCalled()
      expect(executor.runRecordCounters()).toMatchObject({ saveFailures: 1, entered: 0 })
    })

    it('logs running request only for a request whose action starts', async () => {
      const lines: string[] = []
      const { executor, request, run } = setup({
        log: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
      })
      executor.markStarted(NOW + 1)
      executor.handle(request({ issuedAtMs: NOW }), 'peerA') // issued before start: declined
      await flush()
      expect(run).not.toHaveBeenCalled()
      expect(lines.filter(line => line.includes('running request'))).toHaveLength(0)
      executor.handle(request({ issuedAtMs: NOW + 1 }), 'peerA')
      await flush()
      expect(run).toHaveBeenCalledTimes(1)
      expect(lines.filter(line => line.includes('running request'))).toHaveLength(1)
    })
  })
})
