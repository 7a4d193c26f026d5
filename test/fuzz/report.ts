/** The campaign's report: cases per message type, outcome codes per target, findings, the seed. */
import { type CampaignResult, type Finding, SLOW_MS } from './run.js'

const n = (value: number) => value.toLocaleString('en-US')

/** The report: one block per message type, one line per target with its outcome codes. */
export function formatReport(result: CampaignResult, replayHint = true): string {
  const lines: string[] = []
  const seconds = result.elapsedMs / 1000
  lines.push(
    `mesh fuzz: seed ${result.seed}, ${n(result.cases)} cases in ${seconds.toFixed(1)} s (${n(Math.round(result.cases / Math.max(seconds, 0.001)))} cases/s)`,
    '',
    'cases per message type and outcome code per target:',
  )
  for (const [type, perTarget] of [...result.outcomes].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const ms = result.msPerType.get(type) ?? 0
    lines.push(`  ${type}  (${n(result.casesPerType.get(type) ?? 0)} cases, ${(ms / 1000).toFixed(1)} s)`)
    for (const [target, codes] of perTarget) {
      const sorted = [...codes].sort(([, a], [, b]) => b - a)
      lines.push(
        `    ${target.padEnd(32)} ${sorted.map(([code, count]) => `${code} ${n(count)}`).join(' · ')}`,
      )
    }
  }
  lines.push(
    '',
    `mutation kinds (cases): ${[...result.kinds]
      .sort(([, a], [, b]) => b - a)
      .map(([k, c]) => `${k} ${n(c)}`)
      .join(' · ')}`,
    '',
    `accepted mutants checked by the oracles: ${n(result.checked)}`,
    `forgeries:            ${n(result.forgeries)}`,
    `wrong refusals:       ${n(result.wrongRefusals)}`,
    `harness errors:       ${n(result.harnessErrors)} (bugs of the fuzzer itself)`,
    `uncaught exceptions:  ${n(result.uncaught)}`,
    `inputs over ${SLOW_MS} ms:    ${n(result.slow)} (after 3 retries; ${n(result.retimedFast)} more were fast on a retry)`,
    `  reported only:      ${n(result.slowReported)} (generic CBOR targets, home files and configuration)`,
    `  per target:         ${
      [...result.slowPerTarget]
        .sort(([, a], [, b]) => b - a)
        .map(([k, c]) => `${k} ${n(c)}`)
        .join(' · ') || 'none'
    }`,
  )
  if (result.slowest !== undefined) {
    const s = result.slowest
    lines.push(
      `slowest input:        ${s.ms.toFixed(2)} ms, case ${s.index} (${s.type} → ${s.target}; ${s.kinds.join(', ')})`,
    )
  }
  lines.push(`seed:                 ${result.seed}`)
  const section = (title: string, findings: readonly Finding[]) => {
    if (findings.length === 0) return
    lines.push('', `${title}:`)
    for (const f of findings) {
      lines.push(
        `  case ${f.index}: ${f.type} → ${f.target} (${f.kinds.join(', ')}): ${f.detail}`,
        `    input ${f.input}`,
      )
    }
  }
  section('forgeries', result.findings.forgeries)
  section('wrong refusals', result.findings.wrongRefusals)
  section('harness errors', result.findings.harness)
  section('uncaught exceptions', result.findings.uncaught)
  section(`inputs over ${SLOW_MS} ms`, result.findings.slow)
  section(`inputs over ${SLOW_MS} ms, reported only`, result.findings.slowReported)
  if (replayHint) {
    const example =
      result.findings.forgeries[0] ??
      result.findings.wrongRefusals[0] ??
      result.findings.uncaught[0] ??
      result.findings.slow[0] ??
      result.slowest
    lines.push('', `replay one case: npm run fuzz -- --seed ${result.seed} --case ${example?.index ?? 0}`)
  }
  return lines.join('\n')
}
