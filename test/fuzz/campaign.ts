/**
 * `npm run fuzz`: the fuzz campaign (docs/fuzz.md). Bundled by esbuild and run by Node, outside
 * `npm test`; test/fuzz/slice.test.ts runs a bounded slice of it inside.
 *
 *   npm run fuzz                                   1,000,000 cases, random seed (printed)
 *   npm run fuzz -- --cases 50000 --seed 42        (or FUZZ_CASES, FUZZ_SEED)
 *   npm run fuzz -- --seed 42 --case 1234          replay one case: its input and every target's outcome
 *   npm run fuzz -- --type request --type reply    only these message types (a replay needs the same)
 *
 * Prints cases per message type and outcome code per target, the mutation kinds, forgeries, uncaught
 * exceptions, inputs over 10 ms (after three retries), the slowest input and the seed. Exits 1 when
 * any forgery, uncaught exception or slow input was found.
 */
import { randomInt } from 'node:crypto'
import { formatReport } from './report.js'
import { caseInput, createHarness, emptyResult, runCase, runCases } from './run.js'

const n = (value: number) => value.toLocaleString('en-US')

interface Options {
  cases: number
  seed: number
  replay?: number
  /** Message types to fuzz (all when absent). */
  types?: string[]
}

function parseArgs(argv: readonly string[]): Options {
  const env = process.env
  const options: Options = {
    cases: Number(env.FUZZ_CASES ?? 1_000_000),
    seed: env.FUZZ_SEED === undefined ? randomInt(2 ** 32) : Number(env.FUZZ_SEED),
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = Number(argv[i + 1])
    if (arg === '--type') options.types = [...(options.types ?? []), String(argv[i + 1])]
    else if (arg === '--cases') options.cases = value
    else if (arg === '--seed') options.seed = value
    else if (arg === '--case') options.replay = value
    else throw new Error(`unknown argument ${arg} (use --cases N, --seed S, --case I, --type T)`)
    i++
  }
  for (const [name, value] of [
    ['cases', options.cases],
    ['seed', options.seed],
    ['case', options.replay ?? 0],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`)
  }
  return options
}

function main(): void {
  const options = parseArgs(process.argv.slice(2))
  const startedMs = performance.now()
  const harness = createHarness(options.seed, options.types)
  const setupMs = performance.now() - startedMs
  if (options.replay !== undefined) {
    const { type, kinds, input } = caseInput(harness, options.seed, options.replay)
    const result = emptyResult(options.seed)
    const report = runCase(harness, result, options.replay)
    const shown =
      typeof input === 'string'
        ? JSON.stringify(input)
        : `${Buffer.from(input).toString('hex')} (${input.byteLength} bytes)`
    console.log(`seed ${options.seed}, case ${options.replay}: ${type}, mutations ${kinds.join(', ')}`)
    console.log(`input ${shown}`)
    for (const run of report.runs) {
      console.log(
        `  ${run.target.padEnd(32)} ${run.code}  ${run.ms.toFixed(3)} ms${run.problem ? `  FORGERY: ${run.problem}` : ''}${run.error ? `\n${run.error}` : ''}`,
      )
    }
    process.exitCode =
      result.forgeries + result.wrongRefusals + result.uncaught + result.slow + result.harnessErrors > 0
        ? 1
        : 0
    return
  }
  console.log(
    `mesh fuzz: seed ${options.seed}, ${n(options.cases)} cases (world built in ${setupMs.toFixed(0)} ms)`,
  )
  const result = emptyResult(options.seed)
  runCases(harness, result, 0, options.cases, done => {
    if (done % 50_000 === 0) {
      const seconds = (performance.now() - startedMs) / 1000
      console.log(
        `  ${n(done)} cases, ${seconds.toFixed(0)} s: forgeries ${result.forgeries}, wrong refusals ${result.wrongRefusals}, uncaught ${result.uncaught}, slow ${result.slow}`,
      )
    }
  })
  console.log('')
  console.log(formatReport(result))
  process.exitCode =
    result.forgeries + result.wrongRefusals + result.uncaught + result.slow + result.harnessErrors > 0 ? 1 : 0
}

main()
