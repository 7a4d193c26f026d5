/**
 * Admission: the mesh CA, certificates, join tickets, signing requests and revocation lists.
 * Everything here is pure (no I/O, clock or randomness of its own); src/node/ drives it.
 */

export { type SigningKey, signBytes, signingKeyFromSeed, verifyBytes } from '../wire/ed25519.js'
export { isValidName, NAME_CHARS_MAX } from '../wire/fields.js'
export {
  type CachingCertificateVerifier,
  CERTIFICATE_BYTES_MAX,
  CERTIFICATE_VERSION,
  type CertificateCheckOptions,
  type CertificateDecoding,
  CertificateError,
  type CertificateFields,
  type CertificateVerifierInit,
  type CertificateVerifierStats,
  CLOCK_SKEW_TOLERANCE_MS_DEFAULT,
  checkValidityWindow,
  createCertificateVerifier,
  decodeCertificate,
  isSerial,
  issueCertificate,
  newSerial,
  verifyCertificate,
} from './certificate.js'
export {
  FINGERPRINT_TEXT_PREFIX,
  FingerprintError,
  fingerprintOf,
  formatFingerprint,
  parseFingerprint,
  shortFingerprint,
} from './fingerprint.js'
export { peerIdOfPublicKey } from './identity.js'
export {
  type CommandFailure,
  type CommandResult,
  createIssuer,
  DEFAULT_ISSUER_CONFIG,
  type Issuer,
  type IssuerConfig,
  IssuerConfigError,
  type IssuerCounters,
  type IssuerEffect,
  type IssuerInit,
  type IssuerInput,
  type PendingSummary,
  type SigningRefusalReason,
  type SigningResult,
  validateIssuerConfig,
} from './issuer.js'
export {
  decodeIssuerState,
  emptyIssuerState,
  encodeIssuerState,
  type IssuerRosterState,
  type IssuerState,
  IssuerStateError,
} from './issuer-state.js'
export {
  decodeKeyFile,
  decodeTicketSecretFile,
  encodeKeyFile,
  encodeTicketSecretFile,
  KeyFileError,
  type KeyFileErrorCode,
} from './key-file.js'
export {
  createRevocationLookup,
  newer,
  REVOCATION_ENTRIES_MAX,
  REVOCATION_LIST_BYTES_MAX,
  REVOCATION_LIST_FORMAT_VERSION,
  type RevocationEntry,
  type RevocationList,
  RevocationListError,
  type RevocationListRejection,
  type RevocationListVerdict,
  type RevocationLookup,
  type SignedRevocationList,
  signRevocationList,
  verifyRevocationList,
} from './revocation.js'
export {
  createSigningRequest,
  SIGNING_REQUEST_BYTES_MAX,
  SIGNING_REQUEST_NONCE_BYTES,
  SIGNING_REQUEST_VERSION,
  type SignedSigningRequest,
  type SigningRequest,
  SigningRequestError,
  type SigningRequestFields,
  type SigningRequestRejection,
  type SigningRequestVerdict,
  verifySigningRequest,
} from './signing-request.js'
export {
  checkTicket,
  createTicket,
  parseTicket,
  TICKET_BYTES_MAX,
  TICKET_NONCE_BYTES,
  TICKET_PREFIX,
  TICKET_SECRET_BYTES,
  TICKET_VERSION,
  type Ticket,
  TicketError,
  type TicketFields,
  type TicketRejection,
  type TicketVerdict,
} from './ticket.js'
export * from './types.js'
export {
  newerZoneRoster,
  nextZoneRoster,
  type SignedZoneRoster,
  signZoneRoster,
  verifyZoneRoster,
  ZONE_ROSTER_BYTES_MAX,
  ZONE_ROSTER_FORMAT_VERSION,
  ZONE_ROSTER_MEMBERS_MAX,
  ZONE_ROSTER_VERSION_MAX,
  type ZoneRoster,
  ZoneRosterError,
  type ZoneRosterMember,
  type ZoneRosterRejection,
  type ZoneRosterVerdict,
} from './zone-roster.js'
