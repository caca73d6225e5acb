/**
 * @noble/ed25519 with its synchronous API wired to @noble/hashes' SHA-512
 * (the library leaves `hashes.sha512` empty until a host sets it).
 *
 * Every call that noble may throw from (wrong lengths, points not on the curve)
 * is wrapped so callers get a plain result.
 *
 * @internal
 */
import * as ed from "@noble/ed25519"
import { sha256 as nobleSha256, sha512 } from "@noble/hashes/sha2.js"

if (ed.hashes.sha512 === undefined) ed.hashes.sha512 = sha512

/** Ed25519 key, seed and signature sizes in bytes (RFC 8032 §5.1.5). */
export const PUBLIC_KEY_LENGTH = 32
export const SECRET_KEY_LENGTH = 32
export const SIGNATURE_LENGTH = 64

/** A fresh 32-byte secret key seed from the host's CSPRNG (`crypto.getRandomValues`). */
export const randomSecretKey = (): Uint8Array => ed.utils.randomSecretKey()

/** The public key of a 32-byte secret key seed; `undefined` on a wrong length. */
export const publicKeyOf = (secretKey: Uint8Array): Uint8Array | undefined => {
  if (secretKey.length !== SECRET_KEY_LENGTH) return undefined
  try {
    return ed.getPublicKey(secretKey)
  } catch {
    return undefined
  }
}

/** Signs `message` (RFC 8032 §5.1.6); the caller checked the secret key length. */
export const sign = (message: Uint8Array, secretKey: Uint8Array): Uint8Array => ed.sign(message, secretKey)

/**
 * Strict RFC 8032 verification (`zip215: false`: canonical encodings only, so a
 * signature has one spelling). Wrong lengths or invalid points → `false`.
 */
export const verify = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean => {
  try {
    return ed.verify(signature, message, publicKey, { zip215: false })
  } catch {
    return false
  }
}

/** Synchronous SHA-256 (used for key ids and as the digest fallback). */
export const sha256 = (bytes: Uint8Array): Uint8Array => nobleSha256(bytes)
