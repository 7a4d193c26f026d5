// Prints start-up time of `mesh --version` for the bundled source run (node dist/mesh.cjs) and the
// single binary (dist/mesh), median and p95 of RUNS runs each, plus the binary's size.
// Run with `npm run bench:startup` (builds first).
import { spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'

const RUNS = Number(process.env.RUNS ?? 20)

function time(cmd, args) {
  const samples = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint()
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  samples.sort((a, b) => a - b)
  const at = q => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))].toFixed(1)
  return `p50 ${at(0.5)} ms, p95 ${at(0.95)} ms`
}

console.log(`mesh --version, ${RUNS} runs each`)
console.log(`  node dist/mesh.cjs: ${time(process.execPath, ['dist/mesh.cjs', '--version'])}`)
console.log(`  dist/mesh (SEA):    ${time('./dist/mesh', ['--version'])}`)
console.log(`  dist/mesh size:     ${(statSync('dist/mesh').size / 1e6).toFixed(1)} MB`)
