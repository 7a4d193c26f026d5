/**
 * This node's own credentials: its signing key and its current certificate. Renewal replaces the
 * certificate; hello, heartbeats and replies read it through here, so they always present the newest.
 *
 * It also owns whether that certificate is still good: on every revocation list the node adopts (from
 * its home, hello, gossip or a renewal answer; each one checked against the CA key by revocations.ts)
 * it looks for its own serial. A revoked node can no longer take part: it logs so once, at error level,
 * and tells its listeners (renewal stops, connection upkeep stops dialling). Only a CA-signed list can
 * put a node in this state; nothing takes it out (a new certificate means `mesh join` again).
 */

import type { SignedRevocationList } from '../ca/revocation.js'
import type { SignedCertificate } from '../ca/types.js'
import type { SigningKey } from '../wire/ed25519.js'
import { bytesEqual } from '../wire/hash.js'
import type { Logger } from './log.js'

/** A key and the certificate that goes with it (what signs a heartbeat, a reply or a request). */
export interface Signer {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
}

/** The state of this node's certificate: `revoked` once a list signed by the CA names its serial. */
export type CertificateState = 'valid' | 'revoked'

/** The revocation lists as the credentials need them (revocations.ts provides it). */
export interface OwnRevocationPort {
  /** Whether `serial` is on the newest list adopted. */
  isRevoked(serial: string): boolean
  /** Calls `listener` with each newly adopted list; returns an unsubscribe function. */
  onAdopted(listener: (list: SignedRevocationList) => void): () => void
}

/** The node's credentials. */
export interface Credentials {
  readonly key: SigningKey
  /** The current certificate. */
  certificate(): SignedCertificate
  /** A live view: `certificate` always reads the current one. */
  readonly signer: Signer
  /** Swaps in a renewed certificate of the same key and saves it. @throws for another key's certificate */
  replace(signed: SignedCertificate): Promise<void>
  /** Whether the CA has revoked the current certificate (on a list this node holds); never undone. */
  revoked(): boolean
  /** {@link revoked} as a state, for `mesh status`. */
  state(): CertificateState
  /** Calls `listener` once, when this node learns its certificate is revoked; returns an unsubscribe. */
  onRevoked(listener: (serial: string) => void): () => void
}

/** Creates the credentials holder; without `revocations` the certificate is never seen as revoked. */
export function createCredentials(init: {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
  readonly save?: (certificate: SignedCertificate) => Promise<void>
  readonly revocations?: OwnRevocationPort
  readonly log?: Logger
}): Credentials {
  let current = init.certificate
  let revoked = false
  const listeners = new Set<(serial: string) => void>()
  const check = (): void => {
    const serial = current.certificate.serial
    if (revoked || init.revocations?.isRevoked(serial) !== true) return
    revoked = true
    init.log?.error(
      { serial, name: current.certificate.name },
      "this node's certificate was revoked by the CA; it can no longer take part; join again with mesh join",
    )
    for (const listener of listeners) listener(serial)
  }
  init.revocations?.onAdopted(check)
  check() // the list saved in the home may already name us
  return {
    key: init.key,
    certificate: () => current,
    signer: {
      key: init.key,
      get certificate() {
        return current
      },
    },
    async replace(signed) {
      if (!bytesEqual(signed.certificate.publicKey, init.key.publicKey)) {
        throw new Error('assertion: replaceCertificate got a certificate of another key')
      }
      current = signed
      await init.save?.(signed)
    },
    revoked: () => revoked,
    state: () => (revoked ? 'revoked' : 'valid'),
    onRevoked(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
