/**
 * The case loop shared by the campaign (campaign.ts) and the bounded slice (slice.test.ts). Case `i`
 * of a campaign with seed `s` draws everything from `simRandom(caseSeed(s, i))`: the message type, the
 * valid template, the mutations. So any case replays alone, with the same world, from `(s, i)`.
 *
 * Each case's input is fed to every target of its type. Per target and case: the outcome code is
 * counted; an exception that is not the decoder's documented error is an uncaught exception; an
 * accepted input that is not a corpus message goes through the target's oracle, and a failed oracle
 * is a forgery (and a refused input its oracle says is valid, a wrong refusal); the run is timed, and a run over the budget is timed three more times (fresh state
 * each time, the machine is noisy) and counted as slow only when every retry is over too. A run's
 * time is the smaller of its wall-clock time and the CPU time the process spent in it: on a shared
 * machine the wall clock also counts the time other processes held the CPU.
 */
import { simRandom } from '../sim/random.js'
import { createMutationContext, type MutationContext, mutate } from './mutate.js'
import { createTargets, type Input, type Target } from './targets.js'
import { createWorld, inputKey, MESSAGE_TYPES, type Seed, type World } from './world.js'

/** Time budget of one decoder run, ms. */
export const SLOW_MS = 10

/** Relative frequency of each message type (the network-facing ones twice as often). */
const WEIGHTS: Readonly<Record<string, number>> = {
  request: 2,
  reply: 2,
  'member-record': 2,
  'member-message': 2,
  hello: 2,
  certificate: 2,
  'signing-request': 2,
  ticket: 2,
  'join-answer': 2,
}

/** One finding: a forgery, an uncaught exception or a slow input. */
export interface Finding {
  readonly index: number
  readonly type: string
  readonly target: string
  readonly kinds: readonly string[]
  readonly detail: string
  readonly ms?: number
  /** The input, hex (bytes) or JSON (text), cut to a readable length. */
  readonly input: string
}

/** What a campaign (or a slice of one) found. */
export interface CampaignResult {
  readonly seed: number
  cases: number
  elapsedMs: number
  /** Cases per message type. */
  readonly casesPerType: Map<string, number>
  /** Time per message type (mutation, every target and oracle, retries), ms. */
  readonly msPerType: Map<string, number>
  /** Per message type, per target, per outcome code: how many runs. */
  readonly outcomes: Map<string, Map<string, Map<string, number>>>
  /** Cases per mutation kind (a case with two mutations counts for both). */
  readonly kinds: Map<string, number>
  forgeries: number
  /** Cases the harness itself failed on (a bug of the fuzzer, not of mesh; the campaign goes on). */
  harnessErrors: number
  /** Inputs a decoder refused that its oracle says are valid (a decoder stricter than its format). */
  wrongRefusals: number
  uncaught: number
  /** Runs over the budget (after retries) of targets whose time counts. */
  slow: number
  /** Runs over the budget of report-only targets (generic CBOR, home files). */
  slowReported: number
  /** Runs over the budget per `type → target`, both kinds. */
  readonly slowPerTarget: Map<string, number>
  /** Runs over the budget on first timing that were fast on a retry (noise). */
  retimedFast: number
  /** The first findings of each kind (all are counted). */
  readonly findings: {
    forgeries: Finding[]
    harness: Finding[]
    wrongRefusals: Finding[]
    uncaught: Finding[]
    slow: Finding[]
    slowReported: Finding[]
  }
  /** The slowest run (after retries). */
  slowest?: Finding & { readonly ms: number }
  /** Accepted non-corpus inputs the oracles checked. */
  checked: number
}

const FINDINGS_KEPT = 25

/** The seed of case `index` of a campaign seeded `seed`. */
export function caseSeed(seed: number, index: number): number {
  return seed * 1_000_003 + index
}

/** A world, its targets and mutation context: build once per campaign. */
export interface Harness {
  readonly world: World
  readonly ctx: MutationContext
  readonly targets: readonly Target[]
  readonly targetsByType: ReadonlyMap<string, readonly Target[]>
  readonly types: readonly string[]
}

/** Builds the harness for `seed`; `only` restricts the cases to some message types. */
export function createHarness(seed: number, only?: readonly string[]): Harness {
  const world = createWorld(seed)
  const ctx = createMutationContext(world)
  const targets = createTargets(world)
  const targetsByType = new Map<string, Target[]>()
  for (const type of MESSAGE_TYPES)
    targetsByType.set(
      type,
      targets.filter(t => t.types.includes(type)),
    )
  const types = MESSAGE_TYPES.filter(type => only === undefined || only.includes(type)).flatMap(type =>
    Array.from({ length: WEIGHTS[type] ?? 1 }, () => type),
  )
  if (types.length === 0)
    throw new Error(`no message type among ${only?.join(', ')}; types: ${MESSAGE_TYPES.join(', ')}`)
  return { world, ctx, targets, targetsByType, types }
}

/** An empty result for `seed`. */
export function emptyResult(seed: number): CampaignResult {
  return {
    seed,
    cases: 0,
    elapsedMs: 0,
    casesPerType: new Map(),
    msPerType: new Map(),
    outcomes: new Map(),
    kinds: new Map(),
    forgeries: 0,
    harnessErrors: 0,
    wrongRefusals: 0,
    uncaught: 0,
    slow: 0,
    slowReported: 0,
    slowPerTarget: new Map(),
    retimedFast: 0,
    findings: { forgeries: [], harness: [], wrongRefusals: [], uncaught: [], slow: [], slowReported: [] },
    checked: 0,
  }
}

function show(input: Input): string {
  if (typeof input === 'string') return JSON.stringify(input.length > 300 ? `${input.slice(0, 300)}…` : input)
  const hex = Buffer.from(input.subarray(0, 200)).toString('hex')
  return input.byteLength > 200 ? `${hex}… (${input.byteLength} bytes)` : hex
}

function bump<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

/** One case's mutated input, and what each target made of it (for replay and reports). */
export interface CaseReport {
  readonly index: number
  readonly type: string
  readonly kinds: readonly string[]
  readonly input: Input
  readonly runs: { target: string; code: string; ms: number; problem?: string; error?: string }[]
}

/** The input of case `index` (type, template, mutations), without running it. */
export function caseInput(
  h: Harness,
  seed: number,
  index: number,
): { type: string; input: Input; kinds: readonly string[]; template: Seed } {
  const r = simRandom(caseSeed(seed, index))
  const type = r.pick(h.types)
  const templates = h.world.corpus.get(type) ?? []
  const template = r.pick(templates)
  const mutant = mutate(template, h.ctx, r)
  return { type, input: mutant.input, kinds: mutant.kinds, template }
}

/** Runs case `index` and adds what it found to `result`; returns the per-target report. */
export function runCase(h: Harness, result: CampaignResult, index: number, slowMs = SLOW_MS): CaseReport {
  const caseStart = performance.now()
  let c: ReturnType<typeof caseInput>
  try {
    c = caseInput(h, result.seed, index)
  } catch (err) {
    result.harnessErrors++
    const detail = `mutation failed: ${(err as Error)?.stack ?? String(err)}`
    if (result.findings.harness.length < FINDINGS_KEPT) {
      result.findings.harness.push({ index, type: '?', target: 'mutate', kinds: [], detail, input: '' })
    }
    return { index, type: '?', kinds: [], input: new Uint8Array(), runs: [] }
  }
  const { type, input, kinds, template } = c
  try {
    return runTargets(h, result, { index, type, input, kinds, template }, slowMs)
  } catch (err) {
    // An oracle or setup that throws is a fuzzer bug: count it, keep going.
    result.harnessErrors++
    if (result.findings.harness.length < FINDINGS_KEPT) {
      const detail = `harness failed: ${(err as Error)?.stack ?? String(err)}`
      result.findings.harness.push({ index, type, target: '?', kinds, detail, input: show(input) })
    }
    return { index, type, kinds, input, runs: [] }
  } finally {
    result.msPerType.set(type, (result.msPerType.get(type) ?? 0) + performance.now() - caseStart)
  }
}

function runTargets(
  h: Harness,
  result: CampaignResult,
  c: { index: number; type: string; input: Input; kinds: readonly string[]; template: Seed },
  slowMs: number,
): CaseReport {
  const { index, type, input, kinds, template } = c
  result.cases++
  bump(result.casesPerType, type)
  for (const kind of new Set(kinds)) bump(result.kinds, kind)
  let perTarget = result.outcomes.get(type)
  if (perTarget === undefined) {
    perTarget = new Map()
    result.outcomes.set(type, perTarget)
  }
  const report: CaseReport = { index, type, kinds, input, runs: [] }
  const valid = h.world.valid.get(type)
  for (const target of h.targetsByType.get(type) ?? []) {
    let codes = perTarget.get(target.name)
    if (codes === undefined) {
      codes = new Map()
      perTarget.set(target.name, codes)
    }
    const finding = (detail: string, ms?: number): Finding => ({
      index,
      type,
      target: target.name,
      kinds,
      detail,
      input: show(input),
      ...(ms !== undefined ? { ms } : {}),
    })
    // The first run is timed by the wall clock only (reading CPU time costs a system call); retries
    // take the smaller of wall-clock and CPU time.
    const once = (withCpu: boolean): { ms: number; verdict?: ReturnType<Target['run']>; error?: unknown } => {
      const state = target.setup?.(template)
      const cpu = withCpu ? process.cpuUsage() : undefined
      // Refusals are errors; capturing their stacks is a good part of a decoder's time and tells
      // nothing here (an uncaught exception is run again with stacks for the report).
      const stackTraceLimit = Error.stackTraceLimit
      Error.stackTraceLimit = 0
      const start = performance.now()
      const elapsed = (): number => {
        const wallMs = performance.now() - start
        if (cpu === undefined) return wallMs
        const used = process.cpuUsage(cpu)
        return Math.min(wallMs, (used.user + used.system) / 1000)
      }
      try {
        const verdict = target.run(input, template, state)
        return { ms: elapsed(), verdict }
      } catch (error) {
        return { ms: elapsed(), error }
      } finally {
        Error.stackTraceLimit = stackTraceLimit
      }
    }
    let run = once(false)
    let ms = run.ms
    if (ms > slowMs) {
      // Report-only targets are timed once: their time decides nothing.
      const retries = target.timing === 'report' ? 1 : 3
      ms = Number.POSITIVE_INFINITY
      for (let retry = 0; retry < retries && ms > slowMs; retry++) ms = Math.min(ms, once(true).ms)
      if (ms > slowMs) bump(result.slowPerTarget, `${type} → ${target.name}`)
      if (ms > slowMs && target.timing === 'report') {
        result.slowReported++
        const kept = result.findings.slowReported
        if (kept.length < FINDINGS_KEPT) kept.push(finding(`${ms.toFixed(1)} ms`, ms))
      } else if (ms > slowMs) {
        result.slow++
        if (result.findings.slow.length < FINDINGS_KEPT)
          result.findings.slow.push(finding(`${ms.toFixed(1)} ms`, ms))
      } else result.retimedFast++
      run = { ...run, ms }
    }
    if (target.timing !== 'report' && (result.slowest === undefined || ms > result.slowest.ms)) {
      result.slowest = { ...finding(`${ms.toFixed(2)} ms`), ms }
    }
    if (run.error !== undefined) {
      let err = run.error as Error
      try {
        target.run(input, template, target.setup?.(template))
      } catch (again) {
        err = again as Error
      }
      const detail = `${err?.name ?? typeof err}: ${err?.message ?? String(err)}\n${(err?.stack ?? '').split('\n').slice(1, 6).join('\n')}`
      result.uncaught++
      if (result.findings.uncaught.length < FINDINGS_KEPT) result.findings.uncaught.push(finding(detail))
      bump(codes, `UNCAUGHT ${err?.name ?? 'throw'}`)
      report.runs.push({ target: target.name, code: `UNCAUGHT ${err?.name}`, ms, error: detail })
      continue
    }
    const verdict = run.verdict!
    bump(codes, verdict.code)
    if (verdict.crash !== undefined) {
      result.uncaught++
      if (result.findings.uncaught.length < FINDINGS_KEPT)
        result.findings.uncaught.push(finding(`${verdict.code}: ${verdict.crash}`))
    }
    let problem: string | undefined
    if (verdict.accepted && target.check !== undefined && !(valid?.has(inputKey(input)) ?? false)) {
      result.checked++
      problem = target.check(input, verdict.value, template)
      if (problem !== undefined) {
        result.forgeries++
        if (result.findings.forgeries.length < FINDINGS_KEPT) result.findings.forgeries.push(finding(problem))
      }
    }
    if (!verdict.accepted && target.checkRefusal !== undefined) {
      problem = target.checkRefusal(input, verdict, template)
      if (problem !== undefined) {
        result.wrongRefusals++
        if (result.findings.wrongRefusals.length < FINDINGS_KEPT)
          result.findings.wrongRefusals.push(finding(problem))
      }
    }
    report.runs.push({
      target: target.name,
      code: verdict.code,
      ms,
      ...(problem !== undefined ? { problem } : {}),
    })
  }
  return report
}

/** Runs cases `from` … `to - 1`, calling `progress` now and then. */
export function runCases(
  h: Harness,
  result: CampaignResult,
  from: number,
  to: number,
  progress?: (done: number) => void,
): CampaignResult {
  const start = performance.now()
  for (let index = from; index < to; index++) {
    runCase(h, result, index)
    if (progress !== undefined && (index + 1 - from) % 10_000 === 0) progress(index + 1 - from)
  }
  result.elapsedMs += performance.now() - start
  return result
}
