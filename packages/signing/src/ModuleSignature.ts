/**
 * The module signature format, version 1.
 *
 * A signature is UTF-8 JSON with exactly these fields:
 *
 * ```json
 * { "v": 1, "alg": "ed25519", "keyId": "<16 hex>", "name": "counter", "version": "1.0.0",
 *   "hash": "<64 hex>", "sig": "<base64 of 64 bytes>" }
 * ```
 *
 * - `hash` is the module's `ModuleHash`: lowercase hex SHA-256 of the module
 *   bytes with every `agent-runtime.signature` custom section removed, so
 *   embedding a signature does not change the hash.
 * - `keyId` is the first 16 hex chars of SHA-256(public key) (see `KeyPair.ts`).
 * - `sig` is the ed25519 signature (RFC 8032) of the UTF-8 message
 *   `"agent-runtime/module-signature/v1\n" + hash + "\n" + name + "\n" + version`.
 *
 * Embedded, the JSON is the payload of a custom section named
 * `agent-runtime.signature` (WebAssembly core spec §5.5.3 "Custom Section"),
 * which engines ignore, so the module stays a valid, self-contained `.wasm`.
 * Detached, the same JSON is a `.sig` file, passed as `ModuleMetadata.signature`.
 *
 * Decoding is strict: unknown fields, a version other than 1, an algorithm
 * other than ed25519, wrong lengths, non-canonical base64, or a name/version
 * containing a newline (which would make the signed message ambiguous) are
 * rejected.
 *
 * @since 0.1.0
 */
import { fromBase64, fromUtf8, toBase64, utf8 } from "./internal/encoding.js"

/** Name of the custom section that carries an embedded signature. */
export const SIGNATURE_SECTION = "agent-runtime.signature"

/** Prefix of the signed message: domain separation for version 1 of the format. */
export const SIGNATURE_CONTEXT = "agent-runtime/module-signature/v1"

/** A decoded signature (format version 1). */
export interface ModuleSignature {
  readonly v: 1
  readonly alg: "ed25519"
  /** First 16 lowercase hex chars of SHA-256(public key). */
  readonly keyId: string
  /** Module name the signer vouched for (`ModuleMetadata.name`). */
  readonly name: string
  /** Module version the signer vouched for (`ModuleMetadata.version`). */
  readonly version: string
  /** Lowercase hex SHA-256 of the module without signature sections. */
  readonly hash: string
  /** The 64-byte ed25519 signature. */
  readonly sig: Uint8Array
}

/** The bytes an ed25519 signature covers (UTF-8 of context, hash, name, version joined by `\n`). */
export const signedMessage = (hash: string, name: string, version: string): Uint8Array =>
  utf8(`${SIGNATURE_CONTEXT}\n${hash}\n${name}\n${version}`)

/** Why a name or version cannot be signed; `undefined` when it can. */
export const checkLabel = (field: "name" | "version", value: string): string | undefined =>
  value.length === 0 ? `${field} is empty` : value.includes("\n") ? `${field} contains a newline` : undefined

/** Encodes a signature as compact UTF-8 JSON (the section payload / `.sig` file). */
export const encodeSignature = (signature: ModuleSignature): Uint8Array =>
  utf8(
    JSON.stringify({
      v: signature.v,
      alg: signature.alg,
      keyId: signature.keyId,
      name: signature.name,
      version: signature.version,
      hash: signature.hash,
      sig: toBase64(signature.sig)
    })
  )

/** Decoding outcome: the signature, or why the bytes are not one. */
export type DecodeResult =
  | { readonly ok: true; readonly value: ModuleSignature }
  | { readonly ok: false; readonly reason: string }

const FIELDS = ["v", "alg", "keyId", "name", "version", "hash", "sig"] as const

/** Decodes and validates signature JSON bytes (see the module doc for the rules). Never throws. */
export const decodeSignature = (bytes: Uint8Array): DecodeResult => {
  const bad = (reason: string): DecodeResult => ({ ok: false, reason })
  const text = fromUtf8(bytes)
  if (text === undefined) return bad("not UTF-8")
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return bad("not JSON")
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return bad("not a JSON object")
  const record = json as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!(FIELDS as ReadonlyArray<string>).includes(key)) return bad(`unknown field ${JSON.stringify(key)}`)
  }
  for (const key of FIELDS) if (!(key in record)) return bad(`missing field ${JSON.stringify(key)}`)
  const { v, alg, keyId, name, version, hash, sig } = record
  if (v !== 1) return bad(`unsupported format version ${JSON.stringify(v)}`)
  if (alg !== "ed25519") return bad(`unsupported algorithm ${JSON.stringify(alg)}`)
  if (typeof keyId !== "string" || !/^[0-9a-f]{16}$/.test(keyId)) return bad("keyId is not 16 lowercase hex chars")
  if (typeof name !== "string") return bad("name is not a string")
  if (typeof version !== "string") return bad("version is not a string")
  const labelProblem = checkLabel("name", name) ?? checkLabel("version", version)
  if (labelProblem !== undefined) return bad(labelProblem)
  if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) return bad("hash is not 64 lowercase hex chars")
  const sigBytes = typeof sig === "string" ? fromBase64(sig) : undefined
  if (sigBytes === undefined) return bad("sig is not canonical base64")
  if (sigBytes.length !== 64) return bad(`sig is ${sigBytes.length} bytes, expected 64`)
  return { ok: true, value: { v: 1, alg: "ed25519", keyId, name, version, hash, sig: sigBytes } }
}
