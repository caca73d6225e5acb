/**
 * `moduleHash`: the `ModuleHash` of a module — lowercase hex SHA-256 of its
 * bytes with every `agent-runtime.signature` custom section removed
 * (DESIGN.md "Module verification"), so a signed module and the same module
 * unsigned have the same hash.
 *
 * SHA-256 runs on WebCrypto (`crypto.subtle.digest`) where the host has it
 * (Node ≥ 20, browsers, workerd) and on @noble/hashes otherwise; both give the
 * same digest (FIPS 180-4).
 *
 * @since 0.1.0
 */
import type { ModuleHash } from "@agent-runtime/domain"
import { removeCustomSections } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import { sha256 } from "./internal/ed25519.js"
import { toHex } from "./internal/encoding.js"
import { SIGNATURE_SECTION } from "./ModuleSignature.js"

interface SubtleLike {
  digest(algorithm: string, data: Uint8Array): Promise<ArrayBuffer>
}

const subtle = (globalThis as { readonly crypto?: { readonly subtle?: SubtleLike } }).crypto?.subtle

/**
 * Lowercase hex SHA-256 of `bytes` (64 chars). Uses WebCrypto when present,
 * falling back to @noble/hashes if it is missing or rejects the input.
 */
export const sha256Hex = (bytes: Uint8Array): Effect.Effect<string> =>
  subtle === undefined
    ? Effect.sync(() => toHex(sha256(bytes)))
    : Effect.promise(() =>
        subtle.digest("SHA-256", bytes).then(
          (digest) => toHex(new Uint8Array(digest)),
          () => toHex(sha256(bytes))
        )
      )

/**
 * The `ModuleHash` of a module (64 lowercase hex chars): SHA-256 of `bytes`
 * without their `agent-runtime.signature` sections.
 *
 * Never fails: bytes whose sections cannot be walked (not a module, truncated)
 * are hashed as they are — such bytes are refused by verification and by
 * compilation anyway, with the byte offset of the problem.
 */
export const moduleHash = (bytes: Uint8Array): Effect.Effect<ModuleHash> => {
  const stripped = removeCustomSections(bytes, SIGNATURE_SECTION)
  return sha256Hex(stripped.ok ? stripped.value : bytes) as Effect.Effect<ModuleHash>
}
