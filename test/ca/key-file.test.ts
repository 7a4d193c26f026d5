// Proves key and ticket-secret files round-trip and that every damaged file gives a typed error
// (never a fresh key): flipped bytes (exhaustively), wrong type or version, truncation.
import { describe, expect, it } from 'vitest'
import {
  decodeKeyFile,
  decodeTicketSecretFile,
  encodeKeyFile,
  encodeTicketSecretFile,
  KeyFileError,
} from '../../src/ca/key-file.js'
import { encodeCbor } from '../../src/wire/cbor.js'
import { toHex } from '../../src/wire/hash.js'
import { keyFor, secretFor } from './fixtures.js'

function code(run: () => unknown): string {
  try {
    run()
    return 'ok'
  } catch (err) {
    return err instanceof KeyFileError ? err.code : `crash: ${String(err)}`
  }
}

describe('key file', () => {
  const key = keyFor('node')
  const bytes = encodeKeyFile(key)

  it('round-trips', () => {
    const decoded = decodeKeyFile(bytes)
    expect(toHex(decoded.secretKey)).toBe(toHex(key.secretKey))
    expect(toHex(decoded.publicKey)).toBe(toHex(key.publicKey))
  })

  it('every single-byte change is a typed error, never another key', () => {
    for (let position = 0; position < bytes.length; position++) {
      const altered = Uint8Array.from(bytes)
      altered[position] = (altered[position] ?? 0) ^ 0x10
      const result = code(() => decodeKeyFile(altered))
      expect(result, `position ${position}`).not.toMatch(/^crash/)
      expect(result, `position ${position}`).not.toBe('ok')
    }
  })

  it('typed errors', () => {
    expect(code(() => decodeKeyFile(new Uint8Array()))).toBe('malformed')
    expect(code(() => decodeKeyFile(bytes.subarray(0, bytes.length - 1)))).toBe('malformed')
    expect(code(() => decodeKeyFile(new Uint8Array(600)))).toBe('too-large')
    expect(
      code(() =>
        decodeKeyFile(
          encodeCbor({ version: 2, type: 'ed25519', seed: key.secretKey, publicKey: key.publicKey }),
        ),
      ),
    ).toBe('unsupported')
    expect(
      code(() =>
        decodeKeyFile(encodeCbor({ version: 1, type: 'rsa', seed: key.secretKey, publicKey: key.publicKey })),
      ),
    ).toBe('unsupported')
    expect(
      code(() =>
        decodeKeyFile(
          encodeCbor({ version: 1, type: 'ed25519', seed: key.secretKey, publicKey: keyFor('x').publicKey }),
        ),
      ),
    ).toBe('corrupt')
    expect(code(() => decodeKeyFile(encodeTicketSecretFile(secretFor('s'))))).toBe('malformed')
  })

  it('ticket secret file round-trips and refuses a key file', () => {
    const secret = secretFor('s')
    expect(toHex(decodeTicketSecretFile(encodeTicketSecretFile(secret)))).toBe(toHex(secret))
    expect(code(() => decodeTicketSecretFile(bytes))).toBe('malformed')
  })
})
