/**
 * The one typed adapter from validation outcomes to gossipsub verdicts, for every topic (requests,
 * presence, revocation lists). Each topic's handler returns a {@link TopicVerdict}; the adapter maps it
 * to libp2p's `TopicValidatorResult`, counts every code per topic in one table, and turns a handler
 * that throws into `ignore` with code `internal` (STYLE.md §4: peers never pay for our bugs).
 */
import { type GossipSub, TopicValidatorResult } from '@libp2p/gossipsub'
import { gossipTrafficName } from './gossip-traffic.js'
import type { Logger } from './log.js'
import type { Traffic } from './traffic.js'

/** What a topic handler decided. `reject` penalises the forwarder; `ignore` drops without blame. */
export type TopicVerdict =
  | { readonly kind: 'accept'; readonly code?: string }
  | { readonly kind: 'refused'; readonly code: string; readonly action: 'reject' | 'ignore' }

/** Handles one message's bytes from `source` (the forwarding peer). */
export type TopicHandler = (data: Uint8Array, source: string) => TopicVerdict

/** Counts per topic, per code (`accept` or the handler's code). */
export type TopicCounters = Readonly<Record<string, Readonly<Record<string, number>>>>

/** The installed validators. */
export interface TopicValidators {
  counters(): TopicCounters
  /** Counts of refused messages on `topic`. */
  refused(topic: string): number
}

const RESULT = {
  accept: TopicValidatorResult.Accept,
  reject: TopicValidatorResult.Reject,
  ignore: TopicValidatorResult.Ignore,
} as const

/** Installs `handlers` as gossipsub topic validators; each message they see is counted on `traffic`. */
export function installTopicValidators(
  pubsub: Pick<GossipSub, 'topicValidators'>,
  handlers: Readonly<Record<string, TopicHandler>>,
  log: Logger,
  traffic: Traffic,
): TopicValidators {
  const counts: Record<string, Record<string, number>> = {}
  const refusedCounts: Record<string, number> = {}
  for (const [topic, handler] of Object.entries(handlers)) {
    const table: Record<string, number> = {}
    counts[topic] = table
    refusedCounts[topic] = 0
    const trafficName = gossipTrafficName(topic)
    pubsub.topicValidators.set(topic, (source, message) => {
      traffic.count(trafficName, 'in', message.data.byteLength)
      let verdict: TopicVerdict
      try {
        verdict = handler(message.data, source.toString())
      } catch (err) {
        log.error({ topic, err: (err as Error).message }, 'topic handler failed')
        verdict = { kind: 'refused', code: 'internal', action: 'ignore' }
      }
      const code = verdict.code ?? 'accept'
      table[code] = (table[code] ?? 0) + 1
      if (verdict.kind === 'accept') return RESULT.accept
      refusedCounts[topic] = (refusedCounts[topic] ?? 0) + 1
      return RESULT[verdict.action]
    })
  }
  return {
    counters: () => Object.fromEntries(Object.entries(counts).map(([t, c]) => [t, { ...c }])),
    refused: topic => refusedCounts[topic] ?? 0,
  }
}
