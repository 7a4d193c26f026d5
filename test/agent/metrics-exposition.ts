/**
 * Test helper: the Prometheus text exposition parsed by a real parser (npm parse-prometheus-text-format,
 * a port of the Prometheus Python client's parser), with lookups by name and labels.
 *
 * That parser reads every line correctly but groups histograms wrongly when they have labels: it
 * merges the buckets of every label set into one sample and drops labelled `_sum` and `_count` lines.
 * So histogram families are parsed a second time without their TYPE line (their `_bucket`, `_sum`
 * and `_count` lines are then plain samples, labels intact) and grouped here by label set.
 */
import { createRequire } from 'node:module'

/** One series as the parser gives it. */
export interface Sample {
  readonly labels?: Readonly<Record<string, string>>
  readonly value?: string
  readonly buckets?: Readonly<Record<string, string>>
  readonly count?: string
  readonly sum?: string
}

/** One metric family. */
export interface Family {
  readonly name: string
  readonly help: string
  readonly type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
  readonly metrics: readonly Sample[]
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[]

/** The parsed exposition. */
export interface Exposition {
  readonly families: readonly Family[]
  family(name: string): Family | undefined
  /** The value of the series of `name` whose labels include `labels`; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined
  /** The series of `name` whose labels include `labels`. */
  sample(name: string, labels?: Record<string, string>): Sample | undefined
}

/** Histogram families rebuilt from their `_bucket`, `_sum` and `_count` samples, one sample per label set. */
function histograms(text: string, names: ReadonlySet<string>): Map<string, Sample[]> {
  const untyped = text
    .split('\n')
    .filter(line => {
      const m = /^# (?:HELP|TYPE) (\S+)/.exec(line)
      return m === null || !names.has(m[1] as string)
    })
    .join('\n')
  const series = new Map<
    string,
    Map<
      string,
      { labels: Record<string, string>; buckets: Record<string, string>; sum?: string; count?: string }
    >
  >()
  for (const f of parse(untyped)) {
    const m = /^(.*)_(bucket|sum|count)$/.exec(f.name)
    if (m === null || !names.has(m[1] as string)) continue
    const name = m[1] as string
    const part = m[2]
    const byLabels = series.get(name) ?? new Map()
    series.set(name, byLabels)
    for (const sample of f.metrics) {
      const { le, ...labels } = sample.labels ?? {}
      const key = JSON.stringify(Object.entries(labels).sort())
      const entry = byLabels.get(key) ?? { labels, buckets: {} }
      byLabels.set(key, entry)
      if (part === 'bucket' && le !== undefined) entry.buckets[le] = sample.value ?? ''
      else if (part === 'sum') entry.sum = sample.value
      else if (part === 'count') entry.count = sample.value
    }
  }
  return new Map([...series].map(([name, byLabels]) => [name, [...byLabels.values()]]))
}

/** Parses `text`. */
export function parseExposition(text: string): Exposition {
  const parsed = parse(text)
  const rebuilt = histograms(text, new Set(parsed.filter(f => f.type === 'HISTOGRAM').map(f => f.name)))
  const families = parsed.map(f =>
    f.type === 'HISTOGRAM' ? { ...f, metrics: rebuilt.get(f.name) ?? [] } : f,
  )
  const family = (name: string) => families.find(f => f.name === name)
  const sample = (name: string, labels: Record<string, string> = {}) =>
    family(name)?.metrics.find(m => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  return {
    families,
    family,
    sample,
    value(name, labels) {
      const s = sample(name, labels)
      return s?.value === undefined ? undefined : Number(s.value)
    },
  }
}
