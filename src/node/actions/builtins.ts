/**
 * The built-in actions (`uptime`, `ping`, `facts`) and their pure parts: counting logged-in users in a
 * utmp image and formatting the line procps `uptime` prints. Time comes from the registry's clock, the
 * rest from an {@link ActionSystem}, so tests pass a manual clock and a fake system.
 */
import { open } from 'node:fs/promises'
import * as os from 'node:os'
import type { Clock } from '../clock.js'
import type { Facts } from '../facts.js'
import type { ActionHandler, ActionHandlerResult, ActionSystem, BuiltinActionName } from './types.js'

/** Size of one utmp record with glibc on x86_64 (and other 64-bit Linux ABIs with 32-bit time in utmp). */
export const UTMP_RECORD_BYTES = 384
/** `ut_type` of a logged-in user's session. */
const UTMP_USER_PROCESS = 7
/** Offset of `ut_user[32]` in a record. */
const UTMP_USER_OFFSET = 44
/** Most bytes of utmp read (about 2700 sessions). */
export const UTMP_BYTES_MAX = 1024 * 1024
/** Where glibc keeps the login records. */
export const UTMP_PATH = '/var/run/utmp'

/**
 * Counts logged-in users in a utmp image as `uptime` does: records of type USER_PROCESS with a non-empty
 * user name. A partial trailing record is ignored. Pure.
 */
export function countUtmpUsers(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let users = 0
  for (let at = 0; at + UTMP_RECORD_BYTES <= bytes.byteLength; at += UTMP_RECORD_BYTES) {
    if (view.getInt16(at, true) === UTMP_USER_PROCESS && bytes[at + UTMP_USER_OFFSET] !== 0) users++
  }
  return users
}

/** Fields of the `uptime` built-in's structured result. */
export interface UptimeReport {
  readonly nowMs: number
  /** Local time of day, `HH:MM:SS`. */
  readonly time: string
  readonly uptimeSeconds: number
  readonly users: number
  readonly load1: number
  readonly load5: number
  readonly load15: number
}

/**
 * Formats the line printed by procps `uptime`, e.g.
 * ` 10:14:03 up 3 days,  4:02,  2 users,  load average: 0.15, 0.10, 0.05`. Pure.
 */
export function formatUptimeLine(report: Omit<UptimeReport, 'nowMs'>): string {
  const total = Math.max(0, Math.floor(report.uptimeSeconds))
  const days = Math.floor(total / 86_400)
  const hours = Math.floor(total / 3_600) % 24
  const minutes = Math.floor(total / 60) % 60
  let line = ` ${report.time} up `
  if (days > 0) line += `${days} day${days === 1 ? '' : 's'}, `
  line += hours > 0 ? `${String(hours).padStart(2)}:${pad2(minutes)}, ` : `${minutes} min, `
  line += `${String(report.users).padStart(2)} user${report.users === 1 ? '' : 's'}, `
  line += ` load average: ${report.load1.toFixed(2)}, ${report.load5.toFixed(2)}, ${report.load15.toFixed(2)}`
  return line
}

/** `HH:MM:SS` of `nowMs` in a zone `utcOffsetMinutes` east of UTC. Pure. */
export function formatTimeOfDay(nowMs: number, utcOffsetMinutes: number): string {
  const local = new Date(nowMs + utcOffsetMinutes * 60_000)
  return `${pad2(local.getUTCHours())}:${pad2(local.getUTCMinutes())}:${pad2(local.getUTCSeconds())}`
}

function pad2(n: number): string {
  return String(n).padStart(2, '0')
}

/** The system as the built-ins see it. */
export const systemActionSystem: ActionSystem = {
  uptimeSeconds: () => os.uptime(),
  loadAverage: () => {
    const [a = 0, b = 0, c = 0] = os.loadavg()
    return [a, b, c]
  },
  countUsers: () => countUsersIn(UTMP_PATH),
  utcOffsetMinutes: nowMs => -new Date(nowMs).getTimezoneOffset(),
}

/** Counts users in the utmp file at `path`; 0 on other platforms or when unreadable. Never rejects. */
export async function countUsersIn(path: string): Promise<number> {
  // The record layout is glibc's; other systems use other formats.
  if (os.platform() !== 'linux') return 0
  try {
    const handle = await open(path, 'r')
    try {
      const buffer = new Uint8Array(UTMP_BYTES_MAX)
      let length = 0
      while (length < buffer.byteLength) {
        const { bytesRead } = await handle.read(buffer, length, buffer.byteLength - length, length)
        if (bytesRead === 0) break
        length += bytesRead
      }
      return countUtmpUsers(buffer.subarray(0, length))
    } finally {
      await handle.close()
    }
  } catch {
    return 0
  }
}

/** What the built-ins read. */
export interface BuiltinSources {
  readonly system: ActionSystem
  readonly clock: Clock
  readonly facts: () => Facts
}

/** A built-in's handler and the description `list` shows. */
export interface BuiltinAction {
  readonly handler: ActionHandler
  readonly description: string
}

/** The handlers of all built-ins over `sources`. */
export function builtinActions(sources: BuiltinSources): Record<BuiltinActionName, BuiltinAction> {
  const { system, clock } = sources
  return {
    uptime: {
      handler: () => uptimeHandler(system, clock),
      description: 'time, uptime, users and load averages',
    },
    ping: {
      handler: async () => {
        const nowMs = clock.nowMs()
        return { exitCode: 0, output: `pong ${new Date(nowMs).toISOString()}\n`, structured: { nowMs } }
      },
      description: 'answers pong with the node time',
    },
    facts: {
      handler: async () => {
        const facts = sortedFacts(sources.facts())
        return { exitCode: 0, output: `${JSON.stringify(facts, null, 2)}\n`, structured: facts }
      },
      description: "the node's facts as JSON",
    },
  }
}

async function uptimeHandler(system: ActionSystem, clock: Clock): Promise<ActionHandlerResult> {
  const nowMs = clock.nowMs()
  const [load1, load5, load15] = system.loadAverage()
  const report: UptimeReport = {
    nowMs,
    time: formatTimeOfDay(nowMs, system.utcOffsetMinutes(nowMs)),
    uptimeSeconds: Math.floor(system.uptimeSeconds()),
    users: await system.countUsers(),
    load1,
    load5,
    load15,
  }
  return { exitCode: 0, output: `${formatUptimeLine(report)}\n`, structured: report }
}

function sortedFacts(facts: Facts): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of Object.keys(facts).sort()) out[key] = facts[key]!
  return out
}
