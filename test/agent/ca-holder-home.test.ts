// The CA holder files of a home (`mesh ca add-holder`, docs/ca-ha.md): a handover stored with
// saveCaHandover makes a plain member's home a CA holder's (the CA key last, every file 0600) that
// loadHome reads back with its holder set; a holder list or replica record that does not decode stops
// loadHome with one line naming the file and saying what to do; the holder list codec refuses lists
// that are not 2..7 distinct peer ids.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  decodeCaHolders,
  encodeCaHolders,
  homePaths,
  loadHome,
  saveCaHandover,
  saveCaHolders,
  saveCaReplica,
  saveNodeIdentity,
} from '../../src/agent/home.js'
import { initHome } from '../../src/agent/init.js'
import { issueCertificate, newSerial } from '../../src/ca/certificate.js'
import { createHandover, openHandover } from '../../src/ca/handover.js'
import { encodeIssuerState } from '../../src/ca/issuer-state.js'
import { decodeKeyFile, decodeTicketSecretFile } from '../../src/ca/key-file.js'
import { generateSigningKey, secureRandomBytes } from '../../src/node/keys.js'

const NOW_MS = Date.UTC(2030, 0, 1)
let root: string
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'mesh-ca-holder-home-'))
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

describe('CA holder files in a home', () => {
  it('stores a handover so that the home loads as a CA holder with its holder set', async () => {
    const caHome = join(root, 'ca1')
    await initHome(caHome, { name: 'ca1', zone: 'ca' }, NOW_MS)
    const ca = await loadHome(caHome)
    // A second home of the same mesh, without the CA: a node key and a certificate from ca1's CA key.
    const member = join(root, 'ca2')
    const key = generateSigningKey()
    const certificate = issueCertificate(ca.ca!.caKey, {
      serial: newSerial(secureRandomBytes),
      name: 'ca2',
      zone: 'ca',
      roles: ['ca', 'agent'],
      publicKey: key.publicKey,
      notBeforeMs: NOW_MS - 60_000,
      notAfterMs: NOW_MS + 86_400_000,
    })
    await saveNodeIdentity(member, { key, certificate }, ca.caPublicKey)
    expect((await loadHome(member)).ca).toBeUndefined()
    const holders = ['12D3KooWholder1', '12D3KooWholder2']
    const bytes = createHandover({
      caKey: ca.ca!.caKey,
      from: holders[0]!,
      to: holders[1]!,
      issuedAtMs: NOW_MS,
      holders,
      ticketSecret: ca.ca!.ticketSecret,
      issuerState: encodeIssuerState(ca.ca!.issuerState),
    })
    const opened = openHandover(bytes, {
      caPublicKey: ca.caPublicKey,
      self: holders[1]!,
      sender: holders[0]!,
      nowMs: NOW_MS,
    })
    if (!opened.ok) throw new Error(opened.detail)
    await saveCaHandover(member, opened.handover)
    const p = homePaths(member)
    for (const file of [p.caKey, p.ticketSecret, p.issuerState, p.caHolders])
      expect(((await stat(file)).mode & 0o777).toString(8)).toBe('600')
    expect(decodeKeyFile(new Uint8Array(await readFile(p.caKey))).publicKey).toEqual(ca.caPublicKey)
    expect(decodeTicketSecretFile(new Uint8Array(await readFile(p.ticketSecret)))).toEqual(
      ca.ca!.ticketSecret,
    )
    // Loaded again, the member's home is a CA holder's: the same CA material and the holder set.
    const holder = await loadHome(member)
    expect(holder.ca?.caKey.publicKey).toEqual(ca.caPublicKey)
    expect(holder.ca?.ticketSecret).toEqual(ca.ca!.ticketSecret)
    expect(holder.caHolders).toEqual(holders)
    // The CA's own home with a holder list and a replica record loads them.
    await saveCaHolders(caHome, holders)
    const loaded = await loadHome(caHome)
    expect(loaded.caHolders).toEqual(holders)
    expect(loaded.caReplica).toBeUndefined()
  })

  it('refuses a holder list or replica record that does not decode, naming the file', async () => {
    const home = join(root, 'ca1')
    await initHome(home, { name: 'ca1', zone: 'ca' }, NOW_MS)
    const p = homePaths(home)
    await writeFile(p.caHolders, 'not a holder list', { mode: 0o600 })
    await expect(loadHome(home)).rejects.toThrow(
      new RegExp(`^${p.caHolders} is not a CA holder list; restore it`),
    )
    await saveCaHolders(home, ['a', 'b'])
    await saveCaReplica(home, new Uint8Array([0xa1, 0x01, 0x02]))
    await expect(loadHome(home)).rejects.toThrow(
      new RegExp(`^${p.caReplica} is unusable; restore it from a backup`),
    )
  })

  it('encodes holder lists of 2..7 distinct peer ids only', () => {
    expect(decodeCaHolders(encodeCaHolders(['a', 'b', 'c']))).toEqual(['a', 'b', 'c'])
    expect(decodeCaHolders(encodeCaHolders(['a']))).toBeUndefined()
    expect(decodeCaHolders(encodeCaHolders(['a', 'a']))).toBeUndefined()
    expect(decodeCaHolders(encodeCaHolders(['1', '2', '3', '4', '5', '6', '7', '8']))).toBeUndefined()
    expect(decodeCaHolders(encodeCaHolders(['a', '']))).toBeUndefined()
    expect(decodeCaHolders(new Uint8Array([0xff]))).toBeUndefined()
  })
})
