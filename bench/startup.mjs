// Prints the start-up time of the CLI: `mesh --version` and `mesh status` (against an agent started here
// in a temporary home), each RUNS times, for the bundled source run (node dist/mesh.cjs) and the single
// binary (dist/mesh); min, p50 and p95 of the wall time from spawn to exit. `node -e 0` is printed as
// the floor: no CLI can start faster than the node it runs on. Run with `npm run bench:startup`
// (builds first). The runs alternate between the commands, so a change in machine load hits all alike.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, mesh, startAgent, stopAll } from './common.mjs'

const RUNS = Number(process.env.RUNS ?? 30)

function timeAll(commands) {
  const samples = commands.map(() => [])
  for (let i = 0; i < RUNS; i++) {
    commands.forEach(({ cmd, args }, j) => {
      const t0 = process.hrtime.bigint()
      const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 })
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
      samples[j].push(Number(process.hrtime.bigint() - t0) / 1e6)
    })
  }
  return samples.map(xs => {
    xs.sort((a, b) => a - b)
    const at = q => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))].toFixed(1)
    return `min ${at(0)} ms, p50 ${at(0.5)} ms, p95 ${at(0.95)} ms`
  })
}

const root = mkdtempSync(join(tmpdir(), 'mesh-startup-'))
const env = { ...process.env, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }
try {
  const home = join(root, 'n0')
  mesh(['--home', home, 'init', '--name', 'n0', '--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`], {
    env,
  })
  await startAgent(home, { env })
  const status = ['--home', home, 'status']
  const commands = [
    { label: 'node -e 0 (the floor)', cmd: process.execPath, args: ['-e', '0'] },
    { label: 'node dist/mesh.cjs --version', cmd: process.execPath, args: ['dist/mesh.cjs', '--version'] },
    { label: 'node dist/mesh.cjs status', cmd: process.execPath, args: ['dist/mesh.cjs', ...status] },
    { label: 'dist/mesh --version', cmd: './dist/mesh', args: ['--version'] },
    { label: 'dist/mesh status', cmd: './dist/mesh', args: status },
  ]
  // One untimed run each fills Node's compile cache for dist/mesh.cjs.
  for (const { cmd, args } of commands) spawnSync(cmd, args)
  console.log(`CLI start-up, ${RUNS} runs each (wall time, spawn to exit)`)
  const results = timeAll(commands)
  for (const [i, { label }] of commands.entries()) console.log(`  ${label.padEnd(30)} ${results[i]}`)
  console.log(`  dist/mesh size:                ${(statSync('dist/mesh').size / 1e6).toFixed(1)} MB`)
} finally {
  await stopAll()
  rmSync(root, { recursive: true, force: true })
}
