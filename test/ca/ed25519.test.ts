// Proves the node:crypto ed25519 path (src/ca/ed25519.ts) is correct, by checking it against the
// RFC 8032 §7.1 vectors and cross-checking it with noble on random keys and messages (fast-check).
import { ed25519 } from '@noble/curves/ed25519.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { signBytes, signingKeyFromSeed, verifyBytes } from '../../src/wire/ed25519.js'
import { toHex } from '../../src/wire/hash.js'

const fromHex = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'))

const RFC8032 = [
  {
    name: 'TEST 1',
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    public: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2',
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    public: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3',
    secret: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    public: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
]

describe('ed25519', () => {
  it.each(RFC8032)('RFC 8032 $name: both implementations give the vector', vector => {
    const key = signingKeyFromSeed(fromHex(vector.secret))
    const message = fromHex(vector.message)
    const signature = fromHex(vector.signature)
    expect(toHex(key.publicKey)).toBe(vector.public)
    expect(toHex(signBytes(key, message))).toBe(vector.signature)
    expect(toHex(ed25519.sign(message, key.secretKey))).toBe(vector.signature)
    expect(verifyBytes(key.publicKey, message, signature)).toBe(true)
    expect(ed25519.verify(signature, message, key.publicKey)).toBe(true)
    const flipped = Uint8Array.from(signature)
    flipped[0] = (flipped[0] ?? 0) ^ 1
    expect(verifyBytes(key.publicKey, message, flipped)).toBe(false)
    expect(ed25519.verify(flipped, message, key.publicKey)).toBe(false)
  })

  it('node:crypto and noble agree on random keys and messages', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 256 }),
        fc.nat(),
        (seed, message, position) => {
          const key = signingKeyFromSeed(seed)
          const ours = signBytes(key, message)
          expect(toHex(ours)).toBe(toHex(ed25519.sign(message, seed)))
          expect(verifyBytes(key.publicKey, message, ours)).toBe(true)
          const bad = Uint8Array.from(ours)
          const index = position % bad.length
          bad[index] = (bad[index] ?? 0) ^ 0x40
          expect(verifyBytes(key.publicKey, message, bad)).toBe(ed25519.verify(bad, message, key.publicKey))
          expect(verifyBytes(key.publicKey, message, bad)).toBe(false)
        },
      ),
      { numRuns: 50 },
    )
  })

  it('verifyBytes refuses wrong sizes without throwing', () => {
    const key = signingKeyFromSeed(new Uint8Array(32))
    const signature = signBytes(key, new Uint8Array())
    expect(verifyBytes(key.publicKey.subarray(1), new Uint8Array(), signature)).toBe(false)
    expect(verifyBytes(key.publicKey, new Uint8Array(), signature.subarray(1))).toBe(false)
  })
})
