/**
 * `mesh audit --verify --dir DIR [--cert FILE]`: verifies a copy of an audit directory here, without an
 * agent, against the key in a node certificate (default --home's node.cert). Nothing is changed: a torn
 * last record is reported as such. Part of the node half of the bundled CLI (node-commands.ts), as it
 * needs the wire layer.
 */
import { join } from 'node:path'
import { readAuditSegments } from '../agent/audit-file.js'
import { readStateFile } from '../agent/state-file.js'
import { verifyAuditLog } from '../audit/verify.js'
import { decodeCertificate } from '../ca/certificate.js'
import { printAuditReport } from './audit.js'
import { CliError } from './errors.js'
import type { CliIo, GlobalOptions } from './io.js'

export async function auditVerifyCopy(
  io: CliIo,
  globals: GlobalOptions,
  dir: string,
  cert: string | undefined,
): Promise<number> {
  const certPath = cert ?? join(globals.home, 'node.cert')
  const read = await readStateFile(certPath, 64 * 1024)
  if (!read.ok) throw new CliError('unreadable', `cannot read the certificate: ${read.error.message}`)
  const decoded = decodeCertificate(read.bytes)
  if (!decoded.ok) throw new CliError('unreadable', `${certPath} is not a certificate: ${decoded.detail}`)
  let copy: Awaited<ReturnType<typeof readAuditSegments>>
  try {
    copy = await readAuditSegments(dir)
  } catch (err) {
    throw new CliError('unreadable', (err as Error).message)
  }
  if (copy.segments.length === 0) throw new CliError('unreadable', `no audit segments in ${dir}`)
  const report = verifyAuditLog(copy.segments, decoded.signed.certificate.publicKey, {
    fromGenesis: copy.fromGenesis,
  })
  return printAuditReport(io, globals, report)
}
