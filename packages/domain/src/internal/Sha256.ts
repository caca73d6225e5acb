/**
 * SHA-256 (FIPS 180-4) of module bytes for the load cache (`loadModule`).
 * A runtime hashes through its `Hasher` (`hasher`): the platform's own
 * synchronous SHA-256 when the platform injects one
 * (`RuntimePlatform` `PlatformServices.sha256Hex`, e.g. `node:crypto`
 * `hash` from `@agent-runtime/engine-node`'s layers), otherwise the
 * fastest route platform-free code has:
 *
 * - below `SYNC_LIMIT` bytes (8 KiB): this file's synchronous JavaScript
 *   SHA-256 — a few µs, where a `crypto.subtle.digest` round trip costs
 *   40–130 µs of promise and thread-pool overhead whatever the size;
 * - from `SYNC_LIMIT` up: the host's WebCrypto `crypto.subtle.digest`
 *   (native, off the calling thread on Node; a global on Node ≥ 20, browsers
 *   in secure contexts and workerd), found structurally on `globalThis` so
 *   the domain imports no platform API; a host without it, or one that
 *   refuses the input (e.g. a view of a `SharedArrayBuffer`), falls back to
 *   the JavaScript SHA-256.
 *
 * All give the same digest (the unit tests compare them, the injected one
 * on random inputs).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"

interface SubtleLike {
  digest(algorithm: string, data: Uint8Array): Promise<ArrayBuffer>
}

const subtle = (globalThis as { readonly crypto?: { readonly subtle?: SubtleLike } }).crypto?.subtle

/** Inputs shorter than this (bytes) are hashed synchronously in JavaScript; longer ones by WebCrypto when present. */
export const SYNC_LIMIT = 8 * 1024

const HEX: ReadonlyArray<string> = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/** Lowercase hex of a 32-byte digest (64 chars). */
const hex = (digest: ArrayBuffer | Uint8Array): string => {
  const d = digest instanceof Uint8Array ? digest : new Uint8Array(digest)
  let out = ""
  for (let i = 0; i < d.length; i++) out += HEX[d[i] as number]
  return out
}

/** Whether this host hashes large inputs natively (`crypto.subtle` is present). Hashing itself always works. */
export const available: boolean = subtle !== undefined

// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])
const W = new Int32Array(64)

/** One 64-byte block of `m` at `at` into the state `h` (§6.2.2). */
const block = (h: Int32Array, m: Uint8Array, at: number): void => {
  for (let t = 0; t < 16; t++, at += 4) {
    W[t] =
      ((m[at] as number) << 24) | ((m[at + 1] as number) << 16) | ((m[at + 2] as number) << 8) | (m[at + 3] as number)
  }
  for (let t = 16; t < 64; t++) {
    const w15 = W[t - 15] as number
    const w2 = W[t - 2] as number
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3)
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10)
    W[t] = (s1 + (W[t - 7] as number) + s0 + (W[t - 16] as number)) | 0
  }
  let a = h[0] as number,
    b = h[1] as number,
    c = h[2] as number,
    d = h[3] as number
  let e = h[4] as number,
    f = h[5] as number,
    g = h[6] as number,
    k = h[7] as number
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const t1 = (k + S1 + ((e & f) ^ (~e & g)) + (K[t] as number) + (W[t] as number)) | 0
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0
    k = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  h[0] = (h[0] as number) + a
  h[1] = (h[1] as number) + b
  h[2] = (h[2] as number) + c
  h[3] = (h[3] as number) + d
  h[4] = (h[4] as number) + e
  h[5] = (h[5] as number) + f
  h[6] = (h[6] as number) + g
  h[7] = (h[7] as number) + k
}

/** The 32-byte SHA-256 digest of `bytes` (FIPS 180-4 §6.2), computed synchronously in JavaScript. */
export const sha256Sync = (bytes: Uint8Array): Uint8Array => {
  const h = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  ])
  const n = bytes.length
  const whole = n - (n % 64)
  for (let at = 0; at < whole; at += 64) block(h, bytes, at)
  // §5.1.1 padding: 0x80, zeros, the length in bits as a 64-bit big-endian integer
  const tail = new Uint8Array(n % 64 < 56 ? 64 : 128)
  tail.set(bytes.subarray(whole))
  tail[n - whole] = 0x80
  const bits = n * 8
  const hi = Math.floor(bits / 0x100000000)
  const end = tail.length
  tail[end - 8] = hi >>> 24
  tail[end - 7] = hi >>> 16
  tail[end - 6] = hi >>> 8
  tail[end - 5] = hi
  tail[end - 4] = bits >>> 24
  tail[end - 3] = bits >>> 16
  tail[end - 2] = bits >>> 8
  tail[end - 1] = bits
  for (let at = 0; at < end; at += 64) block(h, tail, at)
  const out = new Uint8Array(32)
  for (let i = 0; i < 8; i++) {
    const v = h[i] as number
    out[i * 4] = v >>> 24
    out[i * 4 + 1] = v >>> 16
    out[i * 4 + 2] = v >>> 8
    out[i * 4 + 3] = v
  }
  return out
}

/** Lowercase hex SHA-256 of `bytes`, synchronously in JavaScript (64 chars). */
export const sha256HexSync = (bytes: Uint8Array): string => hex(sha256Sync(bytes))

/**
 * Lowercase hex SHA-256 of `bytes` as given (64 chars): synchronous below
 * `SYNC_LIMIT` bytes, WebCrypto from there when the host has it (the
 * JavaScript SHA-256 when it has not, or refused the bytes). Never fails;
 * `undefined` is kept in the type for callers written against hosts without
 * hashing, and is never produced.
 */
export const sha256Hex = (bytes: Uint8Array): Effect.Effect<string | undefined> =>
  subtle === undefined || bytes.byteLength < SYNC_LIMIT
    ? Effect.sync(() => sha256HexSync(bytes))
    : Effect.promise(() => subtle.digest("SHA-256", bytes).then(hex, () => sha256HexSync(bytes)))

/** Whether `sha256Hex` hashes `bytes` off the calling thread (WebCrypto, from `SYNC_LIMIT` bytes up). */
export const hashesOffThread = (bytes: Uint8Array): boolean => subtle !== undefined && bytes.byteLength >= SYNC_LIMIT

/**
 * `sha256Hex` with the hashing started now, when this function is called,
 * rather than when the returned effect runs: the caller does other work on
 * its thread while WebCrypto hashes `bytes` off it, then runs the effect to
 * wait for the digest. The bytes must not change until then. Same digest as
 * `sha256Hex` (the JavaScript SHA-256 when WebCrypto is absent, refuses the
 * input, or `bytes` are below `SYNC_LIMIT`).
 */
export const startSha256Hex = (bytes: Uint8Array): Effect.Effect<string | undefined> => {
  if (!hashesOffThread(bytes)) return Effect.sync(() => sha256HexSync(bytes))
  const pending = subtle!.digest("SHA-256", bytes).then(hex, () => sha256HexSync(bytes))
  return Effect.promise(() => pending)
}

/** Bytes sampled by `fingerprint` at each end and at each of `FINGERPRINT_SPOTS` evenly spaced places. */
const FINGERPRINT_EDGE = 256
const FINGERPRINT_SPOTS = 16
const FINGERPRINT_SPOT = 32

/**
 * A cheap fingerprint of `bytes` — not a digest of all of them: their length
 * and a 32-bit FNV-1a hash of at most ≈ 1 KiB sampled from the first and last
 * 256 bytes and 16 evenly spaced places, in µs whatever the size. Equal
 * bytes always have equal fingerprints, so bytes whose fingerprint the load
 * cache holds for none of its entries (`ModuleCache.mayHoldLoad`) are
 * certainly not in it: `loadModule` then reads and validates them while
 * their SHA-256 is computed, instead of after.
 */
export const fingerprint = (bytes: Uint8Array): string => {
  const n = bytes.length
  let h = 0x811c9dc5
  if (n <= 2 * FINGERPRINT_EDGE + FINGERPRINT_SPOTS * FINGERPRINT_SPOT) h = fnv(h, bytes, 0, n)
  else {
    h = fnv(h, bytes, 0, FINGERPRINT_EDGE)
    const step = Math.floor((n - 2 * FINGERPRINT_EDGE) / FINGERPRINT_SPOTS)
    for (let s = 0; s < FINGERPRINT_SPOTS; s++) {
      const at = FINGERPRINT_EDGE + s * step
      h = fnv(h, bytes, at, at + FINGERPRINT_SPOT)
    }
    h = fnv(h, bytes, n - FINGERPRINT_EDGE, n)
  }
  return `${n}:${(h >>> 0).toString(16)}`
}

/** 32-bit FNV-1a of `bytes[from, to)` continuing from `h`. */
const fnv = (h: number, bytes: Uint8Array, from: number, to: number): number => {
  for (let i = from; i < to; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193)
  return h
}

/**
 * The platform's synchronous SHA-256 as `PlatformServices.sha256Hex`
 * injects it: lowercase hex (64 chars) of the digest of `bytes` as given.
 */
export type PlatformSha256Hex = (bytes: Uint8Array) => string

/** How one runtime hashes module bytes (`hasher`): the same digest by every route. */
export interface Hasher {
  /** Whether the platform's SHA-256 is used (injected), rather than this file's routes. */
  readonly injected: boolean
  /** Lowercase hex SHA-256 of `bytes` as given (64 chars); never fails (see `sha256Hex`). */
  readonly sha256Hex: (bytes: Uint8Array) => Effect.Effect<string | undefined>
  /**
   * The same digest computed now, synchronously, when this hasher can (the
   * injected SHA-256, or JavaScript below `SYNC_LIMIT` / without WebCrypto);
   * `undefined` when only the asynchronous route can hash `bytes`.
   */
  readonly sha256HexNow: (bytes: Uint8Array) => string | undefined
  /** Whether `sha256Hex` hashes `bytes` off the calling thread (never, with an injected SHA-256). */
  readonly hashesOffThread: (bytes: Uint8Array) => boolean
  /** `sha256Hex` with the hashing started now (see `startSha256Hex`). */
  readonly startSha256Hex: (bytes: Uint8Array) => Effect.Effect<string | undefined>
}

/** `sha256Hex` when it is synchronous (below `SYNC_LIMIT`, or no WebCrypto), else `undefined`. */
const sha256HexNow = (bytes: Uint8Array): string | undefined =>
  subtle === undefined || bytes.byteLength < SYNC_LIMIT ? sha256HexSync(bytes) : undefined

/** This file's routes: JavaScript below `SYNC_LIMIT`, WebCrypto from there. */
export const fallbackHasher: Hasher = { injected: false, sha256Hex, sha256HexNow, hashesOffThread, startSha256Hex }

/**
 * Known answers (FIPS 180-4 examples, and a two-block input) an injected
 * SHA-256 must give before it is used (`hasher`): the empty input, "abc",
 * and the 56-byte "abcdbcdecdefdefg…nopq" (padded to two blocks).
 */
const KNOWN_ANSWERS: ReadonlyArray<readonly [string, string]> = [
  ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
  ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
  [
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
  ]
]

/** Whether `platform` gives the known answers (lowercase hex SHA-256) and throws on none of them. */
const givesKnownAnswers = (platform: PlatformSha256Hex): boolean =>
  KNOWN_ANSWERS.every(([text, digest]) => {
    try {
      return platform(Uint8Array.from(text, (c) => c.charCodeAt(0))) === digest
    } catch {
      return false
    }
  })

/**
 * The runtime's `Hasher`: with `platform` (the injected SHA-256), every
 * input is hashed by it, synchronously on the calling thread — no copy of
 * the input, no promise, whatever the size (`node:crypto` `hash`:
 * ≈ 0.3 µs for a few bytes, ≈ 0.6 ms for 1 MB on the bench machine, where a
 * WebCrypto digest first copies its input on the calling thread).
 *
 * The load cache and the signature check take its answers as the bytes'
 * identity, so a function that is not the lowercase hex SHA-256 must not be
 * used: one that does not give the known answers (`KNOWN_ANSWERS`: FIPS 180-4
 * examples — a digest of another algorithm, uppercase or base64 hex, a
 * constant, a throw) is not used at all (`fallbackHasher`); one that does
 * is checked per input for the shape of its answer — a string of 64 chars,
 * else (or on a throw, e.g. for an input it refuses) the fallback route
 * hashes that input. (The per-input check was a `/^[0-9a-f]{64}$/` test
 * until wave 8: 9–12 % of a cache hit of a small module; the known answers
 * check the function once instead of its every answer's characters.)
 * Without `platform`, `fallbackHasher`.
 */
export const hasher = (platform?: PlatformSha256Hex): Hasher => {
  if (platform === undefined || !givesKnownAnswers(platform)) return fallbackHasher
  const viaPlatform = (bytes: Uint8Array): string | undefined => {
    try {
      const digest = platform(bytes)
      return typeof digest === "string" && digest.length === 64 ? digest : undefined
    } catch {
      return undefined
    }
  }
  // the input the platform just refused in `sha256HexNow` (then hashed asynchronously): not asked twice
  let refused: Uint8Array | undefined
  const hashHex = (bytes: Uint8Array): Effect.Effect<string | undefined> =>
    Effect.suspend(() => {
      const digest = refused === bytes ? undefined : viaPlatform(bytes)
      refused = undefined
      return digest === undefined ? sha256Hex(bytes) : Effect.succeed(digest)
    })
  const startHex = (bytes: Uint8Array): Effect.Effect<string | undefined> => {
    const digest = viaPlatform(bytes) // now: the bytes may change after this call
    return digest === undefined ? startSha256Hex(bytes) : Effect.succeed(digest)
  }
  return {
    injected: true,
    sha256Hex: hashHex,
    sha256HexNow: (bytes) => {
      const digest = viaPlatform(bytes)
      if (digest !== undefined) return digest
      const now = sha256HexNow(bytes)
      if (now === undefined) refused = bytes
      return now
    },
    hashesOffThread: () => false,
    startSha256Hex: startHex
  }
}
