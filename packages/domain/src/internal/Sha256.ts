/**
 * SHA-256 of module bytes for the load cache (`loadModule`): the host's
 * WebCrypto `crypto.subtle.digest("SHA-256")` (FIPS 180-4), a global on
 * Node ≥ 20, browsers (secure contexts) and workerd, and the fastest SHA-256
 * platform-free code can reach (native, off the calling thread on Node). It is
 * looked up structurally on `globalThis`, so the domain imports no platform
 * API; a host without it (or one that refuses the input, e.g. a view of a
 * `SharedArrayBuffer`) gets `undefined` and `loadModule` skips the cache.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"

interface SubtleLike {
  digest(algorithm: string, data: Uint8Array): Promise<ArrayBuffer>
}

const subtle = (globalThis as { readonly crypto?: { readonly subtle?: SubtleLike } }).crypto?.subtle

const HEX: ReadonlyArray<string> = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/** Lowercase hex of a 32-byte digest (64 chars). */
const hex = (digest: ArrayBuffer): string => {
  const d = new Uint8Array(digest)
  let out = ""
  for (let i = 0; i < d.length; i++) out += HEX[d[i] as number]
  return out
}

/** Whether this host can hash (`crypto.subtle` is present). */
export const available: boolean = subtle !== undefined

/**
 * Lowercase hex SHA-256 of `bytes` as given (64 chars), or `undefined` when
 * the host has no WebCrypto or it refused the bytes. Never fails.
 */
export const sha256Hex = (bytes: Uint8Array): Effect.Effect<string | undefined> =>
  subtle === undefined
    ? Effect.succeed(undefined)
    : Effect.promise(() => subtle.digest("SHA-256", bytes).then(hex, () => undefined))
