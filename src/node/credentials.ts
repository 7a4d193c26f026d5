/**
 * This node's own credentials: its signing key and its current certificate. Renewal replaces the
 * certificate; hello, heartbeats and replies read it through here, so they always present the newest.
 */

import type { SignedCertificate } from '../ca/types.js'
import type { SigningKey } from '../wire/ed25519.js'
import { bytesEqual } from '../wire/hash.js'

/** A key and the certificate that goes with it (what signs a heartbeat, a reply or a request). */
export interface Signer {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
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
}

/** Creates the credentials holder. */
export function createCredentials(init: {
  readonly key: SigningKey
  readonly certificate: SignedCertificate
  readonly save?: (certificate: SignedCertificate) => Promise<void>
}): Credentials {
  let current = init.certificate
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
  }
}
