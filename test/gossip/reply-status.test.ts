/**
 * Proves the reply status set end to end in the pure parts: every status in REPLY_STATUSES (including
 * `cancelled`, sent by a node that killed a run while stopping) survives signing, verification and the
 * collector, a status outside the set is refused as malformed, and `isUnknownActionDone` recognises
 * exactly the `error` dones whose reason leads with `unknown-action`.
 */
import { describe, expect, it } from 'vitest'
import {
  createReply,
  isUnknownActionDone,
  REPLY_STATUSES,
  type ReplyStatus,
  verifyReply,
} from '../../src/gossip/reply.js'
import { createReplyCollector } from '../../src/gossip/reply-collector.js'
import { FakeCa, testId } from './fixtures.js'

const NOW = 1_800_000_000_000
const REQ = testId(7)

describe('reply statuses', () => {
  const ca = new FakeCa()
  const node = ca.issue('a', { zone: 'web', roles: ['agent'] })
  const doneWith = (status: ReplyStatus) =>
    createReply(node, {
      kind: 'done',
      requestId: REQ,
      sentAtMs: NOW,
      status,
      exitCode: null,
      output: '',
      durationMs: 5,
      reason: 'cancelled: the node is stopping; process tree killed',
    })

  it('includes cancelled', () => {
    expect(REPLY_STATUSES).toContain('cancelled')
  })

  it.each(REPLY_STATUSES)('carries %s through verify and the collector', status => {
    const verdict = verifyReply(doneWith(status), { verifier: ca.verifier, nowMs: NOW, requestId: REQ })
    if (!verdict.ok) throw new Error(`${verdict.reason}: ${verdict.detail}`)
    const collector = createReplyCollector({
      requestId: REQ,
      requestIdHex: 'id',
      action: 'long',
      expected: ['a'],
      deadlineMs: NOW + 1_000,
    })
    expect(collector.accept(verdict.verified, NOW).kind).toBe('done')
    expect(collector.state).toBe('complete')
    expect(collector.result().replies.map(r => r.status)).toEqual([status])
  })

  it('refuses a status outside the set', () => {
    const bytes = doneWith('bogus' as ReplyStatus)
    const verdict = verifyReply(bytes, { verifier: ca.verifier, nowMs: NOW })
    expect(verdict.ok ? 'ok' : verdict.reason).toBe('malformed')
  })

  it('recognises unknown-action dones only', () => {
    expect(
      isUnknownActionDone({ status: 'error', reason: "unknown-action: this node has no action 'x'" }),
    ).toBe(true)
    expect(isUnknownActionDone({ status: 'denied', reason: 'unknown-action' })).toBe(false)
    expect(isUnknownActionDone({ status: 'error', reason: 'busy' })).toBe(false)
    expect(isUnknownActionDone({ status: 'error' })).toBe(false)
  })
})
