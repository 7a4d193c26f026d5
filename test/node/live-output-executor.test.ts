/**
 * Proves the executor streams a running action's output as signed `output` replies (real validator,
 * fabricated certificates, a fake router that verifies every reply it is handed, a fake action that
 * writes through `onOutput` on the manual clock): the ack comes first, a chunk leaves while the action
 * still runs, the last chunk is flushed before the done, seq counts 0, 1, 2…, and the counters say
 * what was streamed. When every chunk is lost on the way (the router drops them), the done still
 * leaves at once with the complete output: nothing waits for a chunk.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_POLICY } from '../../src/gossip/authorize.js'
import { createReplayCache } from '../../src/gossip/replay.js'
import { type Reply, verifyReply } from '../../src/gossip/reply.js'
import { createRequest } from '../../src/gossip/request.js'
import { createRequestValidator } from '../../src/gossip/validate.js'
import type { ActionResult, ActionRunOptions } from '../../src/node/actions/types.js'
import { createManualClock } from '../../src/node/clock.js'
import { LIVE_OUTPUT_COALESCE_MS } from '../../src/node/live-output.js'
import { silentLogger } from '../../src/node/log.js'
import { createRequestExecutor } from '../../src/node/request-executor.js'
import { createRunRecord } from '../../src/node/run-record.js'
import { FakeCa, testId } from '../gossip/fixtures.js'

const NOW = 1_800_000_000_000
const SKEW = 2_000

/** Lets queued microtasks and the fake action's promise run. */
const flush = (): Promise<void> => new Promise(resolve => setImmediate(resolve))
const bytes = (text: string) => new TextEncoder().encode(text)

/** An executor whose action writes 'one', waits for `release`, writes 'two' and 'oops', and ends. */
function setup(opts: { dropOutput?: boolean } = {}) {
  const ca = new FakeCa()
  const operator = ca.issue('alice', { roles: ['operator'] })
  const node = ca.issue('web1', { zone: 'web', roles: ['agent'] })
  const clock = createManualClock(NOW)
  const validator = createRequestValidator(
    {
      verifier: ca.verifier,
      replay: createReplayCache({ clockSkewToleranceMs: SKEW, entriesMax: 100 }),
      self: () => ({ name: 'web1', zone: 'web', facts: {}, authority: false }),
      policy: () => DEFAULT_POLICY,
    },
    { clockSkewToleranceMs: SKEW, requestLifetimeMsMax: 60_000 },
  )
  const sent: Reply[] = []
  let dropped = 0
  const router = {
    settle: async () => {},
    remember: () => {},
    send: (_id: string, reply: Uint8Array) => {
      const verdict = verifyReply(reply, { verifier: ca.verifier, nowMs: clock.nowMs() })
      if (!verdict.ok) throw new Error(`sent an invalid reply: ${verdict.reason}`)
      if (opts.dropOutput === true && verdict.verified.reply.kind === 'output') {
        dropped++
        return
      }
      sent.push(verdict.verified.reply)
    },
  }
  let release!: () => void
  const released = new Promise<void>(resolve => {
    release = resolve
  })
  const run = async (_name: string, _args: readonly string[], options?: ActionRunOptions) => {
    options?.onOutput?.('stdout', bytes('one\n'))
    await released
    options?.onOutput?.('stdout', bytes('two\n'))
    options?.onOutput?.('stderr', bytes('oops\n'))
    const result: ActionResult = {
      status: 'ok',
      exitCode: 0,
      output: 'one\ntwo\noops\n',
      outputBytes: 13,
      truncated: false,
      timedOut: false,
      durationMs: 150,
    }
    return result
  }
  const executor = createRequestExecutor(
    {
      validator,
      router: router as unknown as Parameters<typeof createRequestExecutor>[0]['router'],
      actions: { run, has: () => true },
      signer: node,
      heldAuthority: () => null,
      clock,
      log: silentLogger(),
      runRecord: createRunRecord({ clock }, { clockSkewToleranceMs: SKEW }),
    },
    { clockSkewToleranceMs: SKEW },
  )
  executor.markStarted(NOW)
  const request = createRequest({
    id: testId(1),
    issuer: operator.certificate.bytes,
    key: operator.key,
    issuedAtMs: NOW,
    expiresAtMs: NOW + 30_000,
    filter: {},
    action: 'uptime',
    args: [],
    replyTo: { peerId: '12D3KooRequester', addrs: [] },
  }).bytes
  const kinds = () => sent.map(r => (r.kind === 'output' ? `output:${r.seq}:${r.data}` : r.kind))
  return { executor, request, clock, sent, kinds, release, dropped: () => dropped }
}

describe('request executor: live output', () => {
  it('streams signed chunks while the action runs and flushes the last before the done', async () => {
    const { executor, request, clock, kinds, release, sent } = setup()
    expect(executor.handle(request, 'peerA').kind).toBe('accept-execute')
    await flush()
    expect(kinds()).toEqual(['ack'])
    clock.advance(LIVE_OUTPUT_COALESCE_MS)
    // The action still runs: its first line is already on its way.
    expect(kinds()).toEqual(['ack', 'output:0:one\n'])
    release()
    await flush()
    expect(kinds()).toEqual(['ack', 'output:0:one\n', 'output:1:two\n', 'output:2:oops\n', 'done'])
    expect(sent[3]).toMatchObject({ kind: 'output', stream: 'stderr', node: 'web1', zone: 'web' })
    expect(sent[4]).toMatchObject({ kind: 'done', status: 'ok', output: 'one\ntwo\noops\n' })
    expect(executor.liveOutputCounters()).toMatchObject({ runs: 1, chunks: 3, bytes: 13, droppedBytes: 0 })
  })

  it('still sends the complete done at once when every chunk is lost', async () => {
    const { executor, request, clock, kinds, release, sent, dropped } = setup({ dropOutput: true })
    executor.handle(request, 'peerA')
    await flush()
    clock.advance(LIVE_OUTPUT_COALESCE_MS)
    release()
    await flush()
    expect(dropped()).toBe(3)
    expect(kinds()).toEqual(['ack', 'done'])
    expect(sent[1]).toMatchObject({ kind: 'done', status: 'ok', output: 'one\ntwo\noops\n' })
    expect(clock.pending()).toBe(0)
  })
})
