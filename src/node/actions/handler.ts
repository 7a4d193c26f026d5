/**
 * The runner of in-process actions (built-ins and custom handlers): calls the handler with a signal that
 * aborts at the time limit or when the run is cancelled, stops waiting for it then, and bounds its output
 * like a process's: what it writes while running ({@link ActionContext.write}, streamed live) and then
 * what it returns share one bounded buffer. Timers come from a {@link Clock}.
 */
import type { Clock } from '../clock.js'
import { OutputBuffer } from './output-buffer.js'
import { liveOutputSink } from './process.js'
import type {
  ActionContext,
  ActionHandler,
  ActionRequestInfo,
  ActionRunOptions,
  RunOutcome,
} from './types.js'

/** One handler run. */
export interface HandlerSpec {
  readonly name: string
  readonly handler: ActionHandler
  readonly args: readonly string[]
  readonly request: ActionRequestInfo
  readonly timeoutMs: number
  readonly outputBytesMax: number
  /** The run's cancel signal (caller or registry close). */
  readonly signal: AbortSignal
  readonly clock: Clock
  /** Gets what the handler writes, as far as the output buffer keeps it (live output). */
  readonly onOutput?: ActionRunOptions['onOutput']
}

/** A completed outcome with nothing in it. */
function emptyOutcome(): Extract<RunOutcome, { kind: 'completed' }> {
  return {
    kind: 'completed',
    exitCode: null,
    output: '',
    outputBytes: 0,
    truncated: false,
    timedOut: false,
    aborted: false,
  }
}

/** Runs a handler to completion, its time limit or cancellation. Never rejects. */
export async function runHandler(spec: HandlerSpec): Promise<RunOutcome> {
  const { signal: outer, timeoutMs } = spec
  const controller = new AbortController()
  const buffer = new OutputBuffer(spec.outputBytesMax)
  const live = liveOutputSink(spec.onOutput)
  let running = true
  let timedOut = false
  const stop = new Promise<'stopped'>(resolve => {
    const onStop = () => resolve('stopped')
    controller.signal.addEventListener('abort', onStop, { once: true })
  })
  const onOuterAbort = () => controller.abort(outer.reason)
  outer.addEventListener('abort', onOuterAbort, { once: true })
  const timer = spec.clock.setTimer(
    () => {
      timedOut = true
      controller.abort(new Error(`time limit of ${timeoutMs}ms reached`))
    },
    timeoutMs,
    { keepAlive: true },
  )
  try {
    const context: ActionContext = {
      name: spec.name,
      args: [...spec.args],
      signal: controller.signal,
      request: spec.request,
      write: (stream, data) => {
        // A handler that lost the race to its time limit may still write: that is not streamed.
        if (!running || (typeof data !== 'string' && !(data instanceof Uint8Array))) return
        live(stream, buffer.push(typeof data === 'string' ? Buffer.from(data, 'utf8') : data))
      },
    }
    const settled = await Promise.race([
      // Through a promise chain so a handler that throws synchronously is caught like a rejection.
      Promise.resolve()
        .then(() => spec.handler(context))
        .then(
          value => ({ value }),
          (error: unknown) => ({ error }),
        ),
      stop,
    ])
    if (settled === 'stopped') {
      running = false
      // What it wrote before it was stopped is kept, as a killed process's output is.
      const written = { output: buffer.text(), outputBytes: buffer.total, truncated: buffer.truncated }
      return timedOut
        ? { ...emptyOutcome(), ...written, timedOut: true, exitCode: null }
        : { ...emptyOutcome(), ...written, aborted: true, exitCode: null }
    }
    if ('error' in settled) {
      return {
        kind: 'threw',
        message: settled.error instanceof Error ? settled.error.message : String(settled.error),
      }
    }
    const result = settled.value
    running = false
    buffer.push(typeof result.output === 'string' ? Buffer.from(result.output, 'utf8') : result.output)
    return {
      kind: 'completed',
      exitCode: Number.isSafeInteger(result.exitCode) ? result.exitCode : 1,
      output: buffer.text(),
      outputBytes: buffer.total,
      truncated: buffer.truncated,
      timedOut: false,
      aborted: false,
      ...(result.structured === undefined ? {} : { structured: result.structured }),
    }
  } finally {
    running = false
    timer.cancel()
    outer.removeEventListener('abort', onOuterAbort)
    // Tell a handler still running (it lost the race) to stop.
    if (!controller.signal.aborted) controller.abort(new Error('run finished'))
  }
}
