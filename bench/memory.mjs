// bench/memory: what an idle agent costs in memory, and what each V8 flag or build change saves.
// Builds an N-node mesh on 127.0.0.1 (n0 by `mesh init`, the others joined by tickets; bench/common.mjs),
// then, for each variant, starts all N agents with that variant's command line, waits until every node
// sees all N members alive, lets them idle SETTLE seconds and reads, per agent:
//   RSS   VmRSS, split into anon (RssAnon: V8 heap, malloc, stacks; private to each agent) and file
//         (RssFile: pages of the executable; the same pages for every agent running the same binary,
//         so the kernel holds them once), and PSS (each shared page divided among its users);
//   CPU   share of one core the agent used while idle (sampled half of the settle time);
//   heap  V8's heap size before a full GC (what the heap holds in RSS) and used after it (what is live),
//         read through the inspector, opened afterwards by SIGUSR1 on a free port so it costs nothing above.
// A freshly written binary sits in the page cache in large folios, which map 10 to 17 MB more of it per
// process than the same file read back from disk; the binary is dropped from the page cache first
// (`dd iflag=nocache`), so `file` is what an installed binary costs after a reboot (docs/memory.md).
//
// Usage: node bench/memory.mjs [N] [VARIANT…] [--settle S] [--bin PATH] [--snapshot DIR]
//          N defaults to 6; VARIANTs (default: sea node v8-pool-1 semi-1) are listed below: `sea`
//          runs the single binary (dist/mesh, or --bin) with the flags it was built with; the others run
//          `node FLAGS dist/mesh.cjs`, the same bundle, so flags compare without rebuilding. --snapshot
//          writes one agent's heap snapshot per variant to DIR.
//        node bench/memory.mjs --lib      bare node, dist/lib.js imported, the CLI's two files loaded
//        node bench/memory.mjs --top FILE [K]   the K biggest retainers in a .heapsnapshot
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { agents, cpuTicks, makeMesh, median, mesh, rssMb, sleep, stopAll } from './common.mjs'

/**
 * Command lines compared. `sea` is the single binary with the flags it was built with (scripts/binary.mjs);
 * the others run `node FLAGS dist/mesh.cjs`. Both set --optimize-for-size once the agent's code is loaded
 * (src/cli/node-bundle.ts), so `optimize-for-size` here only moves it to start-up; to see the agent
 * without it, run an older binary with --bin.
 */
const VARIANTS = {
  sea: { sea: true, flags: [] },
  node: { flags: [] },
  'v8-pool-1': { flags: ['--v8-pool-size=1'] },
  'semi-1': { flags: ['--v8-pool-size=1', '--max-semi-space-size=1'] },
  'semi-2': { flags: ['--v8-pool-size=1', '--max-semi-space-size=2'] },
  'optimize-for-size': { flags: ['--v8-pool-size=1', '--optimize-for-size'] },
  'old-64': { flags: ['--v8-pool-size=1', '--max-old-space-size=64'] },
  'no-opt': { flags: ['--v8-pool-size=1', '--no-opt', '--no-maglev'] },
  'single-threaded-gc': { flags: ['--v8-pool-size=1', '--single-threaded-gc'] },
}
const DEFAULT_VARIANTS = ['sea', 'node', 'v8-pool-1', 'semi-1']

const args = process.argv.slice(2)
const option = name => {
  const i = args.indexOf(name)
  if (i < 0) return undefined
  const [, value] = args.splice(i, 2)
  return value
}
const flag = name => {
  const i = args.indexOf(name)
  if (i >= 0) args.splice(i, 1)
  return i >= 0
}
const MB = 1024 * 1024
const fmt = (x, width = 6) => (Number.isFinite(x) ? x.toFixed(1) : '-').padStart(width)
const progress = line => {
  if (process.env.BENCH_VERBOSE) console.error(`[${new Date().toISOString()}] ${line}`)
}

/** Memory of process `pid` from /proc, MB. */
function procMemory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = key => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) / 1024
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const pss = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? Number.NaN) / 1024
  return { rss: rssMb(pid), anon: kb('RssAnon'), file: kb('RssFile'), pss }
}

/** Drops `file` from the page cache (GNU dd), so the next run maps it as read from disk. */
function dropFromPageCache(file) {
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'])
}

/** An inspector session on `url`: `evaluate(expression)` resolves to the value, `gc()` runs a full GC. */
async function inspectorSession(url) {
  const ws = new WebSocket(url)
  const pending = new Map()
  let next = 0
  ws.onmessage = event => {
    const message = JSON.parse(event.data)
    pending.get(message.id)?.(message)
    pending.delete(message.id)
  }
  const call = (method, params = {}) =>
    new Promise(done => {
      next += 1
      pending.set(next, done)
      ws.send(JSON.stringify({ id: next, method, params }))
    })
  await new Promise((opened, failed) => {
    ws.onopen = opened
    ws.onerror = failed
  })
  return {
    gc: () => call('HeapProfiler.collectGarbage'),
    async evaluate(expression) {
      const reply = await call('Runtime.evaluate', { expression, returnByValue: true })
      if (reply.result?.exceptionDetails) throw new Error(JSON.stringify(reply.result.exceptionDetails))
      return reply.result.result.value
    },
    close: () => ws.close(),
  }
}

/** V8 heap figures of the inspected process, MB. */
const HEAP_STATS = `(() => {
  const h = process.getBuiltinModule('v8').getHeapStatistics()
  return { total: h.total_heap_size / ${MB}, used: h.used_heap_size / ${MB} }
})()`

/** Heap before and after a full GC of the agent behind `url`; with `snapshot`, a heap snapshot there. */
async function heapOf(url, snapshot) {
  const session = await inspectorSession(url)
  try {
    const before = await session.evaluate(HEAP_STATS)
    await session.gc()
    const after = await session.evaluate(HEAP_STATS)
    if (snapshot) {
      await session.evaluate(`process.getBuiltinModule('v8').writeHeapSnapshot(${JSON.stringify(snapshot)})`)
    }
    return { totalBeforeGc: before.total, usedAfterGc: after.used }
  } finally {
    session.close()
  }
}

/** Starts one agent with the variant's command line; resolves once it listens. */
function startVariantAgent(home, variant, env, seaBinary) {
  const [cmd, ...pre] = variant.sea ? [seaBinary] : [process.execPath, ...variant.flags, 'dist/mesh.cjs']
  return new Promise((started, failed) => {
    // --inspect-port=0: the inspector SIGUSR1 opens later takes a free port (there are N agents).
    const child = spawn(cmd, [...pre, '--home', home, 'agent'], {
      env: { ...env, NODE_OPTIONS: '--inspect-port=0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    agents.push(child)
    let out = ''
    let err = ''
    child.inspectorUrl = new Promise(found => {
      child.stderr.on('data', d => {
        err += d
        const m = /Debugger listening on (ws:\/\/\S+)/.exec(err)
        if (m) found(m[1])
      })
    })
    const timer = setTimeout(() => failed(new Error(`agent ${home} did not start: ${out}${err}`)), 120_000)
    child.stdout.on('data', d => {
      out += d
      if (out.includes('listening on')) {
        clearTimeout(timer)
        started(child)
      }
    })
    child.on('exit', code => {
      clearTimeout(timer)
      failed(new Error(`agent ${home} exited ${code}: ${out}${err}`))
    })
  })
}

/** Stops `children` by PID (SIGTERM, SIGKILL after 5 s) and forgets them. */
async function stopAgents(children) {
  await Promise.all(
    children.map(
      c =>
        new Promise(stopped => {
          if (c.exitCode !== null || c.signalCode !== null) return stopped()
          c.once('exit', stopped)
          c.kill('SIGTERM')
          setTimeout(() => c.kill('SIGKILL'), 5_000).unref()
        }),
    ),
  )
  for (const c of children) {
    const i = agents.indexOf(c)
    if (i >= 0) agents.splice(i, 1)
  }
}

async function waitAlive(home, n, env) {
  const deadline = Date.now() + 180_000
  for (;;) {
    const r = mesh(['--home', home, 'members', '--json'], { env, check: false })
    const alive = r.status === 0 ? JSON.parse(r.stdout).filter(m => m.state === 'alive').length : 0
    if (alive === n) return
    if (Date.now() > deadline) throw new Error(`only ${alive} of ${n} members alive after 180 s`)
    await sleep(500)
  }
}

async function benchMesh() {
  const settleS = Number(option('--settle') ?? 20)
  const snapshotDir = option('--snapshot')
  const seaBinary = resolve(option('--bin') ?? 'dist/mesh')
  const n = Number(args.find(a => /^\d+$/.test(a)) ?? 6)
  const names = args.filter(a => !/^\d+$/.test(a))
  const chosen = names.length > 0 ? names : DEFAULT_VARIANTS
  for (const name of chosen) if (!VARIANTS[name]) throw new Error(`unknown variant ${name}`)
  const root = mkdtempSync(join(tmpdir(), 'mesh-memory-'))
  const env = { ...process.env, MESH_LOG_LEVEL: 'warn', NO_COLOR: '1' }
  try {
    const homes = await makeMesh(root, n, i => (i % 2 === 0 ? 'web' : 'db'), env)
    await stopAgents([...agents])
    console.log(
      `bench/memory: N=${n} agents, ${settleS} s idle after all are alive; MB, median of the agents`,
    )
    console.log(
      `variant                      RSS   anon   file    PSS   heap before GC / used after   max RSS  CPU %`,
    )
    for (const name of chosen) {
      const variant = VARIANTS[name]
      dropFromPageCache(variant.sea ? seaBinary : process.execPath)
      const children = await Promise.all(homes.map(home => startVariantAgent(home, variant, env, seaBinary)))
      progress(`${name}: ${n} agents listening`)
      await waitAlive(homes[0], n, env)
      progress(`${name}: all alive`)
      // Idle memory moves with the young generation filling and being scavenged: the first half of the
      // settle time is left alone, the second is sampled once a second and averaged per agent.
      await sleep((settleS * 1000) / 2)
      const cpu0 = children.map(c => cpuTicks(c.pid))
      const samples = []
      for (let t = 0; t < settleS / 2; t++) {
        samples.push(children.map(c => procMemory(c.pid)))
        await sleep(1_000)
      }
      const memory = children.map((c, i) => {
        const mine = samples.map(sample => sample[i])
        const mean = key => mine.reduce((sum, x) => sum + x[key], 0) / mine.length
        return {
          rss: mean('rss'),
          anon: mean('anon'),
          file: mean('file'),
          pss: mean('pss'),
          cpu: (cpuTicks(c.pid) - cpu0[i]) / (settleS / 2),
        }
      })
      const heaps = []
      for (const [i, c] of children.entries()) {
        c.kill('SIGUSR1')
        const snapshot =
          snapshotDir && i === 1 ? join(resolve(snapshotDir), `agent-${name}.heapsnapshot`) : ''
        heaps.push(await heapOf(await c.inspectorUrl, snapshot))
      }
      const m = key => median(memory.map(x => x[key]))
      const h = key => median(heaps.map(x => x[key]))
      console.log(
        `${name.padEnd(25)} ${fmt(m('rss'))} ${fmt(m('anon'))} ${fmt(m('file'))} ${fmt(m('pss'))}   ${fmt(h('totalBeforeGc'), 14)} / ${fmt(h('usedAfterGc'), 4)}   ${fmt(Math.max(...memory.map(x => x.rss)), 7)}  ${fmt(m('cpu'), 5)}`,
      )
      await stopAgents(children)
    }
  } finally {
    await stopAll()
    rmSync(root, { recursive: true, force: true })
  }
}

/** What loading code alone costs: each line is a fresh node that loads one thing, GCs, and reports. */
function benchLoad() {
  const report = `
    globalThis.gc(); globalThis.gc()
    const s = require('node:fs').readFileSync('/proc/self/status', 'utf8')
    const kb = k => Number(new RegExp(k + ':\\\\s+(\\\\d+) kB').exec(s)[1]) / 1024
    const h = require('node:v8').getHeapStatistics()
    console.log(JSON.stringify({ rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'),
      heapTotal: h.total_heap_size / ${MB}, heapUsed: h.used_heap_size / ${MB} }))`
  const cases = [
    ['bare node', ''],
    ["import('dist/lib.js') (node_modules, ESM)", "await import('./dist/lib.js')"],
    ['CLI first file (dist/mesh-main.cjs) only', "require('./dist/mesh-main.cjs')"],
    ['CLI second file (dist/mesh-node.cjs)', "require('./dist/mesh-node.cjs')"],
  ]
  const REQUIRE =
    "const require = process.getBuiltinModule('node:module').createRequire(process.cwd() + '/');" +
    'const sleep = ms => new Promise(r => setTimeout(r, ms));'
  console.log('bench/memory --lib: a fresh node per line, after a full GC; MB')
  console.log('loaded                                         RSS   anon   file   heap total / used')
  for (const [label, load] of cases) {
    // The CLI's first file runs its entry, which would parse argv; give it --version and swallow the exit.
    const pre = load.includes('mesh-main') ? "process.argv.push('--version'); process.exit = () => {};" : ''
    dropFromPageCache(process.execPath)
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', '--input-type=module', '-e', `${REQUIRE}${pre}${load}; await sleep(500); ${report}`],
      { encoding: 'utf8', env: { ...process.env, MESH_LOG_LEVEL: 'silent' } },
    )
    if (r.status !== 0) throw new Error(`${label}: ${r.stderr}`)
    const x = JSON.parse(r.stdout.trim().split('\n').pop())
    console.log(
      `${label.padEnd(44)} ${fmt(x.rss)} ${fmt(x.anon)} ${fmt(x.file)}   ${fmt(x.heapTotal, 10)} / ${fmt(x.heapUsed, 4)}`,
    )
  }
}

/**
 * The biggest retainers in a heap snapshot: the dominator tree (Cooper, Harvey and Kennedy's iterative
 * algorithm) gives each object the bytes that would be freed with it; objects are grouped by
 * constructor or kind, counting only those not held by another of the same group.
 */
function topRetainers(file, k) {
  const snapshot = JSON.parse(readFileSync(file, 'utf8'))
  const meta = snapshot.snapshot.meta
  const nodeFields = meta.node_fields.length
  const edgeFields = meta.edge_fields.length
  const nodeTypes = meta.node_types[0]
  const edgeTypes = meta.edge_types[0]
  const { nodes, edges, strings } = snapshot
  const count = nodes.length / nodeFields
  const at = name => meta.node_fields.indexOf(name)
  const [fType, fName, fSelf, fEdges] = ['type', 'name', 'self_size', 'edge_count'].map(at)
  const [eType, eTo] = ['type', 'to_node'].map(name => meta.edge_fields.indexOf(name))
  const weak = edgeTypes.indexOf('weak')
  const firstEdge = new Uint32Array(count + 1)
  for (let i = 0; i < count; i++) firstEdge[i + 1] = firstEdge[i] + nodes[i * nodeFields + fEdges]
  // Depth-first order from the root (node 0), then predecessors, then dominators.
  const order = new Int32Array(count).fill(-1)
  const post = []
  const stack = [[0, 0]]
  order[0] = 0
  while (stack.length > 0) {
    const top = stack[stack.length - 1]
    const [v] = top
    const end = firstEdge[v + 1]
    let pushed = false
    while (firstEdge[v] + top[1] < end) {
      const e = (firstEdge[v] + top[1]) * edgeFields
      top[1] += 1
      if (edges[e + eType] === weak) continue
      const w = edges[e + eTo] / nodeFields
      if (order[w] !== -1) continue
      order[w] = 0
      stack.push([w, 0])
      pushed = true
      break
    }
    if (!pushed) {
      post.push(v)
      stack.pop()
    }
  }
  const postIndex = new Int32Array(count).fill(-1)
  post.forEach((v, i) => {
    postIndex[v] = i
  })
  const preds = Array.from({ length: count }, () => [])
  for (let v = 0; v < count; v++) {
    if (postIndex[v] < 0) continue
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e++) {
      if (edges[e * edgeFields + eType] === weak) continue
      const w = edges[e * edgeFields + eTo] / nodeFields
      if (postIndex[w] >= 0) preds[w].push(v)
    }
  }
  const idom = new Int32Array(count).fill(-1)
  idom[0] = 0
  const intersect = (a, b) => {
    while (a !== b) {
      while (postIndex[a] < postIndex[b]) a = idom[a]
      while (postIndex[b] < postIndex[a]) b = idom[b]
    }
    return a
  }
  for (let changed = true; changed; ) {
    changed = false
    for (let i = post.length - 2; i >= 0; i--) {
      const v = post[i]
      let d = -1
      for (const p of preds[v]) if (idom[p] !== -1) d = d === -1 ? p : intersect(p, d)
      if (d !== -1 && idom[v] !== d) {
        idom[v] = d
        changed = true
      }
    }
  }
  const retained = new Float64Array(count)
  for (const v of post) {
    retained[v] += nodes[v * nodeFields + fSelf]
    if (v !== 0) retained[idom[v]] += retained[v]
  }
  const group = v => {
    const type = nodeTypes[nodes[v * nodeFields + fType]]
    const name = strings[nodes[v * nodeFields + fName]]
    if (type === 'object' || type === 'native') return name
    if (type === 'closure') return `(closure) ${name || 'anonymous'}`
    return `(${type})`
  }
  const groups = new Map()
  for (const v of post) {
    if (v === 0) continue
    const g = group(v)
    const entry = groups.get(g) ?? { self: 0, retained: 0, count: 0 }
    entry.self += nodes[v * nodeFields + fSelf]
    entry.count += 1
    if (group(idom[v]) !== g) entry.retained += retained[v]
    groups.set(g, entry)
  }
  console.log(`${file}: ${(retained[0] / MB).toFixed(1)} MB reachable in ${count} objects`)
  console.log('retained MB   self MB    count  group')
  for (const [g, e] of [...groups].sort((a, b) => b[1].retained - a[1].retained).slice(0, k)) {
    console.log(
      `${fmt(e.retained / MB, 11)} ${fmt(e.self / MB, 9)} ${String(e.count).padStart(8)}  ${g.slice(0, 90)}`,
    )
  }
}

try {
  const top = option('--top')
  if (top) topRetainers(top, Number(args[0] ?? 30))
  else if (flag('--lib')) benchLoad()
  else await benchMesh()
} catch (err) {
  console.error(err)
  process.exitCode = 1
}
