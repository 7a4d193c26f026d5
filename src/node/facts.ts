/**
 * Node facts: what a node says about itself in its presence heartbeat and what `--fact` and `--where`
 * filters match against. Facts are flat `string → string`; numbers are written in decimal.
 *
 * Collected without shelling out: the static part (host, platform, kernel, CPU count, memory, distribution)
 * once at start, the moving part (uptime) on every refresh, which costs a couple of syscalls. User tags
 * from the config are merged in, but never override a built-in fact: a node cannot claim to be another
 * operating system by tag.
 */
import { readFile } from 'node:fs/promises'
import * as os from 'node:os'

/** Facts as published: key → value. */
export type Facts = Readonly<Record<string, string>>

/** The keys mesh fills in itself; tags with these names are ignored (and reported by {@link factTagProblems}). */
export const BUILTIN_FACT_KEYS = [
  'hostname',
  'os',
  'distro',
  'arch',
  'kernel',
  'cpus',
  'memoryTotalBytes',
  'meshVersion',
  'uptimeSeconds',
] as const

/** Most user tags a node publishes. */
export const FACT_TAGS_MAX = 64
/** Longest tag value, in characters. */
export const FACT_VALUE_LENGTH_MAX = 256
const TAG_KEY = /^[A-Za-z][\w.-]{0,63}$/

/** Where facts come from; the real one reads `node:os` and /etc/os-release, tests pass a fake. */
export interface FactsProbe {
  hostname(): string
  platform(): string
  arch(): string
  /** Kernel release, as `uname -r`. */
  release(): string
  cpuCount(): number
  totalMemoryBytes(): number
  uptimeSeconds(): number
  /** Contents of os-release(5), or undefined when absent (non-Linux). */
  readOsRelease(): Promise<string | undefined>
}

/** What {@link createFactsProvider} needs. */
export interface FactsInit {
  /** mesh's version, published as `meshVersion`. */
  readonly meshVersion: string
  /** User-defined tags from the config; at most {@link FACT_TAGS_MAX}. */
  readonly tags?: Readonly<Record<string, string>>
  /** Source of the facts; default {@link systemFactsProbe}. */
  readonly probe?: FactsProbe
}

/** Holds the node's facts. Owned by the agent; the returned records are frozen snapshots. */
export interface FactsProvider {
  /** The latest snapshot. Before the first {@link refresh} it holds only the tags and `meshVersion`. */
  current(): Facts
  /** Collects the static facts on the first call, re-reads the moving ones on every call. Never rejects. */
  refresh(): Promise<Facts>
}

/** The probe over the running system. */
export const systemFactsProbe: FactsProbe = {
  hostname: () => os.hostname(),
  platform: () => os.platform(),
  arch: () => os.arch(),
  release: () => os.release(),
  cpuCount: () => os.availableParallelism(),
  totalMemoryBytes: () => os.totalmem(),
  uptimeSeconds: () => os.uptime(),
  readOsRelease: async () => {
    for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
      try {
        return await readFile(path, 'utf8')
      } catch {
        // try the next location; os-release(5) names both
      }
    }
    return undefined
  },
}

/**
 * Lists what is wrong with a tag set (too many, bad key, too long, shadows a built-in fact); empty when
 * valid. Pure; the config loader reports these with the other config problems.
 */
export function factTagProblems(tags: Readonly<Record<string, string>>): string[] {
  const problems: string[] = []
  const keys = Object.keys(tags)
  if (keys.length > FACT_TAGS_MAX)
    problems.push(`${keys.length} tags, more than the limit of ${FACT_TAGS_MAX}`)
  for (const key of keys) {
    if (!TAG_KEY.test(key)) problems.push(`tag '${key}': keys are a letter then up to 63 of [A-Za-z0-9_.-]`)
    if ((BUILTIN_FACT_KEYS as readonly string[]).includes(key)) {
      problems.push(`tag '${key}': a built-in fact has this name`)
    }
    const value = tags[key]!
    if (value.length > FACT_VALUE_LENGTH_MAX) {
      problems.push(`tag '${key}': value longer than ${FACT_VALUE_LENGTH_MAX} characters`)
    }
  }
  return problems
}

/** Extracts PRETTY_NAME (else NAME) from os-release(5) text, or undefined. Pure. */
export function distroFromOsRelease(text: string): string | undefined {
  const values = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (match === null) continue
    values.set(match[1]!, unquote(match[2]!))
  }
  const name = values.get('PRETTY_NAME') ?? values.get('NAME')
  return name === undefined || name === '' ? undefined : name.slice(0, FACT_VALUE_LENGTH_MAX)
}

/** Creates the provider; call `refresh()` once at start and before each heartbeat. */
export function createFactsProvider(init: FactsInit): FactsProvider {
  const probe = init.probe ?? systemFactsProbe
  const tags = usableTags(init.tags ?? {})
  let staticFacts: Record<string, string> | undefined
  let snapshot: Facts = Object.freeze({ ...tags, meshVersion: init.meshVersion })

  async function collectStatic(): Promise<Record<string, string>> {
    const facts: Record<string, string> = {
      hostname: safe(() => probe.hostname()),
      os: safe(() => probe.platform()),
      arch: safe(() => probe.arch()),
      kernel: safe(() => probe.release()),
      cpus: safe(() => String(probe.cpuCount())),
      memoryTotalBytes: safe(() => String(probe.totalMemoryBytes())),
      meshVersion: init.meshVersion,
    }
    const osRelease = await probe.readOsRelease().catch(() => undefined)
    const distro = osRelease === undefined ? undefined : distroFromOsRelease(osRelease)
    if (distro !== undefined) facts.distro = distro
    return facts
  }

  return {
    current: () => snapshot,
    async refresh() {
      staticFacts ??= await collectStatic()
      const uptimeSeconds = safe(() => String(Math.floor(probe.uptimeSeconds())))
      snapshot = Object.freeze({ ...tags, ...staticFacts, uptimeSeconds })
      return snapshot
    },
  }
}

/** Collects the facts once (a provider's first refresh); for callers that do not refresh. Never rejects. */
export function collectFacts(init: FactsInit): Promise<Facts> {
  return createFactsProvider(init).refresh()
}

/** Tags that pass {@link factTagProblems} individually, capped at {@link FACT_TAGS_MAX}. */
function usableTags(tags: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {}
  let count = 0
  for (const [key, value] of Object.entries(tags)) {
    if (count >= FACT_TAGS_MAX) break
    if (factTagProblems({ [key]: value }).length > 0) continue
    out[key] = value
    count++
  }
  return out
}

/** A probe failure (a sandbox without /proc, say) yields an empty fact rather than no heartbeat. */
function safe(read: () => string): string {
  try {
    return read()
  } catch {
    return ''
  }
}

function unquote(value: string): string {
  const match = /^(["'])(.*)\1$/.exec(value)
  return match === null ? value : match[2]!.replace(/\\(["$`\\])/g, '$1')
}
