/**
 * The file of zone-lease epochs a node granted (the home's `authority-epochs`): written by the
 * authority driver before each grant of a new epoch, read at start so a restarted voter knows them
 * (src/authority/authority.ts, `durableEpochs`).
 */
import { EPOCH_MAX } from '../authority/messages.js'
import { decodeCbor, encodeCbor, isRecord } from '../wire/cbor.js'

/** Most zones whose epochs are saved (the core votes in at most `zonesMax` zones). */
const SAVED_EPOCH_ZONES_MAX = 1024
/** Largest epochs file read. */
export const EPOCHS_BYTES_MAX = 128 * 1024

/** Encodes the saved epochs (the home's `authority-epochs` file). */
export function encodeEpochs(epochs: ReadonlyMap<string, number>): Uint8Array {
  return encodeCbor({ v: 1, zones: Object.fromEntries([...epochs].sort(([a], [b]) => (a < b ? -1 : 1))) })
}

/**
 * Decodes saved epochs, or undefined when the bytes are not a whole epochs file: any bad entry makes the
 * file suspect, and the core then recovers as without saved epochs (docs/authority.md). Never throws.
 */
export function decodeEpochs(bytes: Uint8Array): Record<string, number> | undefined {
  try {
    const value = decodeCbor(bytes, EPOCHS_BYTES_MAX)
    if (!isRecord(value) || value.v !== 1 || !isRecord(value.zones)) return undefined
    const entries = Object.entries(value.zones)
    if (entries.length > SAVED_EPOCH_ZONES_MAX) return undefined
    const out: Record<string, number> = {}
    for (const [zone, epoch] of entries) {
      if (zone.length === 0 || zone.length > 64) return undefined
      const bounded =
        typeof epoch === 'number' && Number.isSafeInteger(epoch) && epoch >= 0 && epoch <= EPOCH_MAX
      if (!bounded) return undefined
      out[zone] = epoch
    }
    return out
  } catch {
    return undefined
  }
}
