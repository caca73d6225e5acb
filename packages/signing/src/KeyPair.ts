/**
 * Ed25519 key pairs (RFC 8032) for signing modules, their key ids and their
 * JSON form (the key files of `agent-runtime keygen`).
 *
 * Keys are raw bytes: a 32-byte secret key seed and a 32-byte public key. The
 * `keyId` is the first 16 lowercase hex chars of SHA-256(public key): short
 * enough to read, long enough (64 bits) to tell keys apart in a trust store.
 *
 * Key file JSON: `{ "keyId": "<16 hex>", "publicKey": "<64 hex>", "secretKey": "<64 hex>" }`
 * (a public key file is the same without `secretKey`; extra fields such as
 * `"warning"` or `"label"` are ignored).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { PUBLIC_KEY_LENGTH, publicKeyOf, randomSecretKey, sha256 } from "./internal/ed25519.js"
import { fromHex, toHex } from "./internal/encoding.js"

/** A key file, trust store or key is malformed or inconsistent (`reason` says how). */
export class InvalidKey extends Data.TaggedError("InvalidKey")<{ readonly reason: string }> {
  override get message() {
    return `invalid key: ${this.reason}`
  }
}

/** An ed25519 key pair: `secretKey` (32-byte seed) and `publicKey` (32 bytes), and the public key's id. */
export interface KeyPair {
  readonly keyId: string
  readonly publicKey: Uint8Array
  readonly secretKey: Uint8Array
}

/** JSON form of a key pair (hex keys). */
export interface KeyPairJson {
  readonly keyId: string
  readonly publicKey: string
  readonly secretKey: string
}

/** JSON form of a public key (hex). */
export interface PublicKeyJson {
  readonly keyId: string
  readonly publicKey: string
}

/** The key id of a public key: first 16 lowercase hex chars of SHA-256(publicKey). */
export const keyIdOf = (publicKey: Uint8Array): string => toHex(sha256(publicKey)).slice(0, 16)

/** A fresh key pair from the host's CSPRNG (`crypto.getRandomValues`). */
export const generateKeyPair = (): KeyPair => keyPairFromSecretKey(randomSecretKey())

/**
 * The key pair of a 32-byte secret key seed. Throws a `RangeError` on a seed
 * of another length (a programming error; key files go through `decodeKeyPair`).
 */
export const keyPairFromSecretKey = (secretKey: Uint8Array): KeyPair => {
  const publicKey = publicKeyOf(secretKey)
  if (publicKey === undefined) throw new RangeError(`secret key must be 32 bytes, got ${secretKey.length}`)
  return { keyId: keyIdOf(publicKey), publicKey, secretKey: Uint8Array.from(secretKey) }
}

/** The JSON form of a key pair (hex keys). */
export const encodeKeyPair = (keyPair: KeyPair): KeyPairJson => ({
  keyId: keyPair.keyId,
  publicKey: toHex(keyPair.publicKey),
  secretKey: toHex(keyPair.secretKey)
})

/** The JSON form of a key pair's public half. */
export const encodePublicKey = (keyPair: Pick<KeyPair, "keyId" | "publicKey">): PublicKeyJson => ({
  keyId: keyPair.keyId,
  publicKey: toHex(keyPair.publicKey)
})

const hexField = (record: Record<string, unknown>, field: string, bytes: number): Uint8Array | string => {
  const value = record[field]
  if (typeof value !== "string") return `${field} is missing or not a string`
  const decoded = fromHex(value)
  if (decoded === undefined || decoded.length !== bytes) return `${field} is not ${bytes * 2} hex chars`
  return decoded
}

const asRecord = (json: unknown): Record<string, unknown> | undefined =>
  typeof json === "object" && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined

/**
 * Reads a public key from its JSON form (`{ publicKey, keyId? }`; a key pair
 * JSON works too). A `keyId`, when present, must match the key.
 * Fails with `InvalidKey` on a missing or malformed field or a mismatching id.
 */
export const decodePublicKey = (json: unknown): Effect.Effect<{ keyId: string; publicKey: Uint8Array }, InvalidKey> => {
  const record = asRecord(json)
  if (record === undefined) return Effect.fail(new InvalidKey({ reason: "not a JSON object" }))
  const publicKey = hexField(record, "publicKey", PUBLIC_KEY_LENGTH)
  if (typeof publicKey === "string") return Effect.fail(new InvalidKey({ reason: publicKey }))
  const keyId = keyIdOf(publicKey)
  if (record["keyId"] !== undefined && record["keyId"] !== keyId) {
    return Effect.fail(
      new InvalidKey({ reason: `keyId ${String(record["keyId"])} does not match the public key (${keyId})` })
    )
  }
  return Effect.succeed({ keyId, publicKey })
}

/**
 * Reads a key pair from its JSON form. The public key is re-derived from the
 * secret key; a `publicKey` or `keyId` that does not match it fails with
 * `InvalidKey`, as does a missing or malformed `secretKey`.
 */
export const decodeKeyPair = (json: unknown): Effect.Effect<KeyPair, InvalidKey> => {
  const record = asRecord(json)
  if (record === undefined) return Effect.fail(new InvalidKey({ reason: "not a JSON object" }))
  const secretKey = hexField(record, "secretKey", 32)
  if (typeof secretKey === "string") return Effect.fail(new InvalidKey({ reason: secretKey }))
  const keyPair = keyPairFromSecretKey(secretKey)
  if (record["publicKey"] !== undefined && String(record["publicKey"]).toLowerCase() !== toHex(keyPair.publicKey)) {
    return Effect.fail(new InvalidKey({ reason: "publicKey does not match the secret key" }))
  }
  if (record["keyId"] !== undefined && record["keyId"] !== keyPair.keyId) {
    return Effect.fail(
      new InvalidKey({ reason: `keyId ${String(record["keyId"])} does not match the key (${keyPair.keyId})` })
    )
  }
  return Effect.succeed(keyPair)
}
