// Cost of verifying a request with 1, 2 and 3 signatures (issue 12, the two-person rule): the whole
// validation pipeline (src/gossip/validate.ts) on a target node, with a caching certificate verifier
// as nodes run it (each certificate's CA signature is checked once, then remembered), for a request
// signed by its proposer alone, with one approval, and with two.
//
//   node bench/approvals.mjs [N]     (default 3000 requests per case; bundles the sources with esbuild)
//
// CPU per request from process.cpuUsage, median of 5 rounds. No network, no files.
import { importSources } from './sources.mjs'

const entry = `
export { createApproval, encodeApprovedRequest } from './src/gossip/approval.ts'
export { parsePolicy } from './src/gossip/authorize.ts'
export { createReplayCache } from './src/gossip/replay.ts'
export { createRequest } from './src/gossip/request.ts'
export { createRequestValidator } from './src/gossip/validate.ts'
export { createCertificateVerifier, issueCertificate, newSerial } from './src/ca/certificate.ts'
export { signingKeyFromSeed } from './src/wire/ed25519.ts'
export { hash } from './src/wire/hash.ts'
`
const m = await importSources('approvals', entry)
const N = Number(process.argv[2] ?? 3000)
const { randomBytes } = await import('node:crypto')

const caKey = m.signingKeyFromSeed(randomBytes(32))
const now = Date.now()
const identity = name => {
  const key = m.signingKeyFromSeed(randomBytes(32))
  const certificate = m.issueCertificate(caKey, {
    serial: m.newSerial(n => randomBytes(n)),
    name,
    publicKey: key.publicKey,
    zone: 'core',
    roles: ['operator'],
    notBeforeMs: now - 60_000,
    notAfterMs: now + 86_400_000,
  })
  return { key, certificate }
}
const [alice, bob, carol] = ['alice', 'bob', 'carol'].map(identity)
const policy = m.parsePolicy({ rules: [{ actions: ['restart-db'], roles: ['operator'], signatures: 1 }] })

function round(approvers) {
  const verifier = m.createCertificateVerifier({ caPublicKey: caKey.publicKey })
  const validator = m.createRequestValidator(
    {
      verifier,
      replay: m.createReplayCache({ clockSkewToleranceMs: 30_000, entriesMax: N + 10 }),
      self: () => ({ name: 'd1', zone: 'db', facts: {} }),
      policy: () => policy,
    },
    { clockSkewToleranceMs: 30_000, requestLifetimeMsMax: 300_000 },
  )
  const messages = []
  for (let i = 0; i < N; i++) {
    const request = m.createRequest({
      id: randomBytes(16),
      issuer: alice.certificate.bytes,
      key: alice.key,
      issuedAtMs: now,
      expiresAtMs: now + 60_000,
      filter: { zone: 'db' },
      action: 'restart-db',
      replyTo: { peerId: '12D3KooWexample', addrs: ['/ip4/127.0.0.1/tcp/7600'] },
    })
    const approvals = approvers.map(a => m.createApproval(a, request.envelope.bodyBytes))
    messages.push(m.encodeApprovedRequest(request.envelopeBytes, approvals))
  }
  const c0 = process.cpuUsage()
  for (const bytes of messages) {
    const outcome = validator.validate(bytes, now)
    if (outcome.kind !== 'accept-execute') throw new Error(`unexpected ${outcome.kind} ${outcome.code ?? ''}`)
  }
  const c = process.cpuUsage(c0)
  return { usPerRequest: (c.user + c.system) / N, bytes: messages[0].byteLength }
}

const med = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`bench/approvals: ${N} requests per case, median of 5 rounds, CPU per request validated`)
const rows = []
for (const [label, approvers] of [
  ['1 signature (no approvals)', []],
  ['2 signatures (1 approval)', [bob]],
  ['3 signatures (2 approvals)', [bob, carol]],
]) {
  const rounds = Array.from({ length: 5 }, () => round(approvers))
  rows.push({ label, us: med(rounds.map(r => r.usPerRequest)), bytes: rounds[0].bytes })
}
for (const r of rows)
  console.log(`  ${r.label.padEnd(28)} ${r.us.toFixed(1).padStart(7)} µs   ${r.bytes} bytes on the wire`)
console.log(
  `  each approval adds ${((rows[2].us - rows[0].us) / 2).toFixed(1)} µs (one ed25519 verification, once-cached certificate)`,
)
