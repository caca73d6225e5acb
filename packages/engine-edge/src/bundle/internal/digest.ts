/**
 * SHA-256 on WebCrypto (`crypto.subtle.digest`, FIPS 180-4): present in
 * workerd, browsers and Node ≥ 20 as a global. The digest of a variant skips
 * `agent-runtime.signature` custom sections (see `BundleManifest` "Keys").
 *
 * @internal
 */
import { removeCustomSections } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import { SIGNATURE_SECTION } from "../BundleManifest.js"

const hex = (buffer: ArrayBuffer): string => {
  const bytes = new Uint8Array(buffer)
  let out = ""
  for (const b of bytes) out += b.toString(16).padStart(2, "0")
  return out
}

/** Lowercase hex SHA-256 of `bytes`. */
export const sha256Hex = (bytes: Uint8Array): Effect.Effect<string> =>
  Effect.promise(() => crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>).then(hex))

/**
 * Lowercase hex SHA-256 of `bytes` without their `agent-runtime.signature`
 * sections (bytes whose sections cannot be walked are hashed as they are).
 * For a module as loaded this is its `ModuleHash`.
 */
export const codeDigest = (bytes: Uint8Array): Effect.Effect<string> => {
  const stripped = removeCustomSections(bytes, SIGNATURE_SECTION)
  return sha256Hex(stripped.ok ? stripped.value : bytes)
}
