// Proves the agent's metrics against a stand-in node: what each metric reports (members by zone and
// state, requests by code, actions and exec latency from the node's events, lease epochs and the
// failovers counted from them, certificate and revocation state, traffic per protocol), that the
// exposition parses with a real Prometheus parser and follows the naming conventions, that label sets
// stay bounded (action names not configured here, zones past the cap, never a request id), and the
// /metrics server's answers on 127.0.0.1.
import { afterEach, describe, expect, it } from 'vitest'
import type { HttpListener } from '../../src/agent/api/listen.js'
import {
  ACTION_LABELS_MAX,
  createAgentMetrics,
  createMetricsServer,
  OTHER_LABEL,
  ZONE_LABELS_MAX,
} from '../../src/agent/metrics.js'
import type { MemberView } from '../../src/membership/view.js'
import type { NodeEvent, NodeEventListener } from '../../src/node/events.js'
import type { MeshNode } from '../../src/node/node-types.js'
import type { ZoneView } from '../../src/node/zone-view.js'
import { parseExposition } from './metrics-exposition.js'

const REQUEST_ID = 'f00dfeedf00dfeedf00dfeedf00dfeed'

function member(name: string, zone: string, state: MemberView['state']): MemberView {
  return { name, peerId: `p-${name}`, zone, roles: ['agent'], addrs: [], state, lastSeenMs: 0, facts: {} }
}

/** A node with just what the metrics read, every part settable. */
function stubNode() {
  const listeners = new Set<NodeEventListener>()
  const state = {
    members: [member('w1', 'web', 'alive'), member('w2', 'web', 'suspect'), member('d1', 'db', 'dead')],
    zones: [
      { zone: 'web', members: ['w1', 'w2'], authority: 'w1', epoch: 3, leaseRemainingMs: 1500 },
      { zone: 'db', members: ['d1'], authority: null, epoch: 0, leaseRemainingMs: null },
    ] as ZoneView[],
    held: new Set(['web']),
    revoked: false,
    counts: 0,
  }
  const node = {
    name: 'w1',
    zone: 'web',
    peerId: 'p-w1',
    issuer: undefined,
    members: () => state.members,
    zones: () => state.zones,
    counters: () => {
      state.counts += 1
      return {
        requests: { 'accept-execute': 3, replayed: 2 },
        membership: { health: 1, refused: { 'bad-signature': 2 } },
        repliesRefused: 1,
        zoneRoster: { version: 7 },
        traffic: {
          windowMs: 10_000,
          protocols: { membership: { msgsIn: 10, msgsOut: 9, bytesIn: 1000, bytesOut: 900 } },
          total: {},
        },
      }
    },
    certificate: () => ({ certificate: { notAfterMs: 1_900_000_000_000, serial: 's1' } }),
    isRevoked: () => state.revoked,
    isAuthority: (zone: string) => (state.held.has(zone) ? { epoch: 3 } : null),
    observe: (listener: NodeEventListener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  } as unknown as MeshNode
  const emit = (event: NodeEvent) => {
    for (const l of listeners) l(event)
  }
  return { node, state, emit, listeners }
}

const request = (action: string) => ({ idHex: REQUEST_ID, body: { action } }) as never

function done(action: string, status: 'ok' | 'failed', durationMs: number): NodeEvent {
  return {
    type: 'reply-sent',
    request: request(action),
    kind: 'done',
    bytes: new Uint8Array(),
    done: { status, exitCode: status === 'ok' ? 0 : 1, durationMs, output: REQUEST_ID, ran: true },
    atMs: 0,
  }
}

describe('agent metrics', () => {
  it('reports members, requests, trust and traffic, and parses as Prometheus text', async () => {
    const { node } = stubNode()
    const metrics = createAgentMetrics(node, {
      actionNames: ['uptime'],
      version: '9.9.9',
      internals: { revocationListVersion: () => 4 },
    })
    const text = await metrics.render()
    const m = parseExposition(text)
    expect(m.value('mesh_node_info', { name: 'w1', zone: 'web', version: '9.9.9' })).toBe(1)
    expect(m.value('mesh_members', { zone: 'web', state: 'alive' })).toBe(1)
    expect(m.value('mesh_members', { zone: 'web', state: 'suspect' })).toBe(1)
    expect(m.value('mesh_members', { zone: 'web', state: 'dead' })).toBe(0)
    expect(m.value('mesh_members', { zone: 'db', state: 'dead' })).toBe(1)
    expect(m.value('mesh_requests_total', { code: 'accept-execute' })).toBe(3)
    expect(m.value('mesh_requests_total', { code: 'replayed' })).toBe(2)
    expect(m.value('mesh_membership_refused_total', { reason: 'bad-signature' })).toBe(2)
    expect(m.value('mesh_membership_local_health')).toBe(1)
    expect(m.value('mesh_replies_refused_total')).toBe(1)
    expect(m.value('mesh_certificate_expiry_timestamp_seconds')).toBe(1_900_000_000)
    expect(m.value('mesh_certificate_revoked')).toBe(0)
    expect(m.value('mesh_revocation_list_version')).toBe(4)
    expect(m.value('mesh_zone_roster_version')).toBe(7)
    expect(m.value('mesh_protocol_messages_total', { protocol: 'membership', direction: 'in' })).toBe(10)
    expect(m.value('mesh_protocol_bytes_total', { protocol: 'membership', direction: 'out' })).toBe(900)
    expect(m.value('mesh_zone_authority_epoch', { zone: 'web' })).toBe(3)
    expect(m.value('mesh_zone_authority_epoch', { zone: 'db' })).toBeUndefined()
    expect(m.value('mesh_zone_authority_held', { zone: 'web' })).toBe(1)
    expect(m.value('mesh_zone_lease_remaining_seconds', { zone: 'web' })).toBe(1.5)
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(1_000_000)
    expect(m.value('process_cpu_seconds_total')).toBeGreaterThan(0)
    expect(m.value('nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0)
    expect(m.value('nodejs_eventloop_active_seconds_total')).toBeGreaterThan(0)
    metrics.stop()
  })

  it('follows the naming conventions: prefixes, _total counters, base units', async () => {
    const { node, emit } = stubNode()
    const metrics = createAgentMetrics(node, { actionNames: ['uptime'], version: '1' })
    emit(done('uptime', 'ok', 10))
    const { families } = parseExposition(await metrics.render())
    expect(families.length).toBeGreaterThan(25)
    for (const f of families) {
      expect(f.name).toMatch(/^(mesh|process|nodejs)_[a-z_]+$/)
      expect(f.help.length).toBeGreaterThan(0)
      if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/)
      else expect(f.name).not.toMatch(/_total$/)
      if (f.type === 'HISTOGRAM') expect(f.name).toMatch(/_seconds$/)
      expect(f.name).not.toMatch(/_(ms|milliseconds|kb|mb)(_|$)/)
    }
    metrics.stop()
  })

  it('counts actions run and exec latency from events, with action labels bounded to this node’s actions', async () => {
    const { node, emit } = stubNode()
    const metrics = createAgentMetrics(node, { actionNames: ['uptime', 'ping'], version: '1' })
    emit(done('uptime', 'ok', 12))
    emit(done('uptime', 'ok', 2_000))
    emit(done('uptime', 'failed', 30))
    emit(done('something-an-operator-typed', 'ok', 5))
    emit(done(REQUEST_ID, 'ok', 5))
    // Not run here (denied, unknown action): a done, but no action run.
    emit({
      ...(done('ping', 'ok', 0) as Extract<NodeEvent, { type: 'reply-sent' }>),
      done: { status: 'denied', exitCode: null, durationMs: 0, output: '', ran: false },
    })
    emit({ type: 'reply-sent', request: request('uptime'), kind: 'ack', bytes: new Uint8Array(), atMs: 0 })
    emit({
      type: 'request-accepted',
      request: request('uptime'),
      verdict: 'denied',
      code: 'accept-denied',
      upstream: undefined,
      atMs: 0,
    } as never)
    emit({
      type: 'exec-finished',
      id: REQUEST_ID,
      action: 'uptime',
      expected: 3,
      ok: 2,
      failed: 0,
      missing: 1,
      durationMs: 350,
      atMs: 0,
    })
    emit({
      type: 'exec-finished',
      id: REQUEST_ID,
      action: 'typo-action',
      expected: 1,
      ok: 0,
      failed: 1,
      missing: 0,
      durationMs: 80,
      atMs: 0,
    })
    const text = await metrics.render()
    const m = parseExposition(text)
    expect(m.value('mesh_actions_total', { action: 'uptime', status: 'ok' })).toBe(2)
    expect(m.value('mesh_actions_total', { action: 'uptime', status: 'failed' })).toBe(1)
    expect(m.value('mesh_actions_total', { action: OTHER_LABEL, status: 'ok' })).toBe(2)
    expect(m.value('mesh_actions_total', { action: 'ping' })).toBeUndefined()
    const histogram = m.sample('mesh_action_duration_seconds', { action: 'uptime', status: 'ok' })
    expect(Number(histogram?.count)).toBe(2)
    expect(Number(histogram?.sum)).toBeCloseTo(2.012, 6)
    expect(Number(histogram?.buckets?.['0.025'])).toBe(1)
    expect(Number(histogram?.buckets?.['+Inf'])).toBe(2)
    expect(m.value('mesh_replies_sent_total', { kind: 'done', status: 'ok' })).toBe(4)
    expect(m.value('mesh_replies_sent_total', { kind: 'done', status: 'denied' })).toBe(1)
    expect(m.value('mesh_replies_sent_total', { kind: 'ack', status: 'none' })).toBe(1)
    expect(m.value('mesh_request_verdicts_total', { verdict: 'denied' })).toBe(1)
    expect(m.value('mesh_replies_received_total', { result: 'ok' })).toBe(2)
    expect(m.value('mesh_replies_received_total', { result: 'not-ok' })).toBe(1)
    expect(m.value('mesh_replies_missing_total')).toBe(1)
    expect(Number(m.sample('mesh_exec_duration_seconds', { action: 'uptime' })?.sum)).toBeCloseTo(0.35, 6)
    expect(Number(m.sample('mesh_exec_duration_seconds', { action: OTHER_LABEL })?.count)).toBe(1)
    // No label anywhere carries the request id or an operator's free text.
    expect(text).not.toContain(REQUEST_ID)
    expect(text).not.toContain('something-an-operator-typed')
    expect(text).not.toContain('typo-action')
    metrics.stop()
  })

  it('keeps at most the configured number of action labels', async () => {
    const { node, emit } = stubNode()
    const names = Array.from({ length: ACTION_LABELS_MAX + 10 }, (_, i) => `action-${i}`)
    const metrics = createAgentMetrics(node, { actionNames: names, version: '1' })
    for (const name of names) emit(done(name, 'ok', 1))
    const m = parseExposition(await metrics.render())
    const labels = new Set(m.family('mesh_actions_total')?.metrics.map(s => s.labels?.action))
    expect(labels.size).toBe(ACTION_LABELS_MAX + 1)
    expect(m.value('mesh_actions_total', { action: OTHER_LABEL })).toBe(10)
    metrics.stop()
  })

  it('bounds zone labels: the first zones seen, then other', async () => {
    const { node, state } = stubNode()
    // The node's own zone comes last and still keeps its label.
    state.members = [
      ...Array.from({ length: ZONE_LABELS_MAX + 30 }, (_, i) => member(`n${i}`, `zone-${i}`, 'alive')),
      member('w1', 'web', 'alive'),
    ]
    const metrics = createAgentMetrics(node, { actionNames: [], version: '1' })
    const m = parseExposition(await metrics.render())
    const zones = new Set(m.family('mesh_members')?.metrics.map(s => s.labels?.zone))
    expect(zones.size).toBe(ZONE_LABELS_MAX + 1)
    expect(zones.has('web')).toBe(true)
    expect(m.value('mesh_members', { zone: OTHER_LABEL, state: 'alive' })).toBe(31)
    metrics.stop()
  })

  it('counts failovers as the epoch increments seen since the first epoch, and lease changes', async () => {
    const { node, state } = stubNode()
    let authorityListener: ((e: { zone: string; epoch: number; held: boolean }) => void) | undefined
    const metrics = createAgentMetrics(node, {
      actionNames: [],
      version: '1',
      internals: {
        onAuthorityChange: listener => {
          authorityListener = listener
          return () => {
            authorityListener = undefined
          }
        },
      },
    })
    const failovers = async () =>
      parseExposition(await metrics.render()).value('mesh_zone_authority_failovers_total', { zone: 'web' })
    expect(await failovers()).toBe(0)
    state.zones = [{ ...state.zones[0]!, authority: 'w2', epoch: 5 }]
    expect(await failovers()).toBe(2)
    // This node's own changes are counted and their epochs seen even between scrapes.
    authorityListener?.({ zone: 'web', epoch: 6, held: true })
    authorityListener?.({ zone: 'web', epoch: 6, held: false })
    const m = parseExposition(await metrics.render())
    expect(m.value('mesh_zone_authority_failovers_total', { zone: 'web' })).toBe(3)
    expect(m.value('mesh_authority_changes_total', { zone: 'web', change: 'acquired' })).toBe(1)
    expect(m.value('mesh_authority_changes_total', { zone: 'web', change: 'lost' })).toBe(1)
    metrics.stop()
    expect(authorityListener).toBeUndefined()
  })

  it('reads each source once per scrape, shares a scrape between concurrent callers, and unsubscribes on stop', async () => {
    const { node, state, listeners } = stubNode()
    const metrics = createAgentMetrics(node, { actionNames: [], version: '1' })
    expect(listeners.size).toBe(1)
    const [a, b] = await Promise.all([metrics.render(), metrics.render()])
    expect(a).toBe(b)
    expect(state.counts).toBe(1)
    await metrics.render()
    expect(state.counts).toBe(2)
    metrics.stop()
    metrics.stop()
    expect(listeners.size).toBe(0)
  })
})

describe('metrics server', () => {
  let listener: HttpListener | undefined
  afterEach(async () => {
    await listener?.stop()
    listener = undefined
  })

  it('serves /metrics on 127.0.0.1 and nothing else', async () => {
    const metrics = createAgentMetrics(stubNode().node, { actionNames: [], version: '1' })
    listener = await createMetricsServer(metrics, '127.0.0.1:0')
    const res = await fetch(`${listener.url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/plain')
    expect(parseExposition(await res.text()).value('mesh_node_info', { name: 'w1' })).toBe(1)
    expect((await fetch(`${listener.url}/`)).status).toBe(404)
    expect((await fetch(`${listener.url}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405)
    metrics.stop()
  })

  it('refuses a bad or busy address with a clear error', async () => {
    const metrics = createAgentMetrics(stubNode().node, { actionNames: [], version: '1' })
    listener = await createMetricsServer(metrics, '127.0.0.1:0')
    await expect(createMetricsServer(metrics, `127.0.0.1:${listener.port}`)).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+ \(metricsListen\): the address is in use/,
    )
    metrics.stop()
  })
})
