/**
 * `SnapshotCodec`: the wire format of an `InstanceSnapshot` — one
 * `Uint8Array` that repositories store, NATS KV carries and another host (or
 * platform) restores. Versioned, checksummed, optionally compressed, and
 * refused with a typed error when it is corrupt or belongs to another module
 * (issue 4 "Complete snapshots"; DESIGN.md "Snapshots").
 *
 * Layout (integers little-endian):
 *
 * ```
 * offset  size  field
 * 0       4     magic "ARSN" (0x41 0x52 0x53 0x4e)
 * 4       2     format version (u16) = FORMAT_VERSION
 * 6       2     reserved, 0
 * 8       4     header length H (u32)
 * 12      4     payload length P (u32), as stored (compressed or not)
 * 16      H     header: UTF-8 JSON — the snapshot's metadata (agent, module
 *               hash, lifecycle, memory limit/reservation in bytes, counts,
 *               takenAt in ms) + memoryBytes, pageCount, globalCount,
 *               bodyLength (uncompressed payload bytes), compressed
 * 16+H    P     payload (compressed when header.compressed):
 *                 u32 pageCount, then per page: u32 index, u32 length, bytes
 *                 u32 globalCount, then per global: u32 name length, UTF-8
 *                 name, u8 tag (0 = number as f64, 1 = i64 bigint as s64),
 *                 8 value bytes
 * 16+H+P  4     CRC-32 (IEEE 802.3, as zlib's crc32) of every byte before it
 * ```
 *
 * Pages are the engine's non-zero 64 KiB pages (`EngineState.pages`; zero
 * pages are skipped by the engine and stay skipped); the header stays
 * uncompressed so the module hash is checked before the payload is
 * decompressed. Compression is injected (`SnapshotCompression`): callers pass
 * `CompressionStream` / `DecompressionStream`-based functions where the
 * platform has them (browsers, Deno, Node ≥ 18, workerd) — the domain itself
 * uses no platform API.
 *
 * The byte format lives in `internal/SnapshotFormat.ts`; this module holds
 * the validation policy — what `encode` refuses (`SnapshotInvalid`), which
 * module a decoded snapshot must belong to (`SnapshotMismatch`) — and turns
 * format failures into `SnapshotCorrupt`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { InstanceSnapshot } from "./InstanceRepository.js"
import * as Format from "./internal/SnapshotFormat.js"

/** The snapshot bytes are not a valid snapshot: bad magic, unsupported version, checksum mismatch, truncation, inconsistent fields. */
export class SnapshotCorrupt extends Schema.TaggedError<SnapshotCorrupt>()("SnapshotCorrupt", {
  reason: Schema.String
}) {
  override get message() {
    return `corrupt snapshot: ${this.reason}`
  }
}

/** The snapshot is intact but was taken from another module (hashes are lowercase hex SHA-256). */
export class SnapshotMismatch extends Schema.TaggedError<SnapshotMismatch>()("SnapshotMismatch", {
  expected: Schema.String,
  actual: Schema.String
}) {
  override get message() {
    return `snapshot belongs to module ${this.actual}, expected ${this.expected}`
  }
}

/**
 * A snapshot that cannot be encoded so that `decode` gives it back
 * unchanged: metadata the header refuses, pages that are not 64 KiB, not in
 * increasing index order or outside `memoryBytes`, or globals that are
 * neither numbers nor i64 bigints.
 */
export class SnapshotInvalid extends Schema.TaggedError<SnapshotInvalid>()("SnapshotInvalid", {
  reason: Schema.String
}) {
  override get message() {
    return `snapshot cannot be encoded: ${this.reason}`
  }
}

/**
 * Byte compression, injected. Where the platform has the Compression Streams
 * API, pass e.g.
 *
 * ```ts
 * const through = (stream: CompressionStream | DecompressionStream) => async (bytes: Uint8Array) =>
 *   new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(stream)).arrayBuffer())
 * const gzip = { compress: (b) => through(new CompressionStream("gzip"))(b), decompress: (b) => through(new DecompressionStream("gzip"))(b) }
 * ```
 *
 * `decompress` rejecting (malformed data) makes `decode` fail with `SnapshotCorrupt`.
 */
export interface SnapshotCompression {
  readonly compress: (bytes: Uint8Array) => Promise<Uint8Array>
  readonly decompress: (bytes: Uint8Array) => Promise<Uint8Array>
}

export interface EncodeOptions {
  /** Compress the payload (the header stays readable). */
  readonly compression?: SnapshotCompression
}

export interface DecodeOptions {
  /** Refuse (with `SnapshotMismatch`) a snapshot of any other module hash. */
  readonly expectedModuleHash?: string
  /** Needed to decode a compressed snapshot; without it that is a `SnapshotCorrupt`. */
  readonly compression?: SnapshotCompression
}

/** Version of the byte layout above (distinct from `InstanceSnapshot.version`, which the header carries). */
export const FORMAT_VERSION = Format.FORMAT_VERSION

/** CRC-32 of `bytes` as an unsigned 32-bit number (the value of zlib's `crc32`). */
export const crc32 = Format.crc32

// --- validation policy ---

const I64_MIN = -(1n << 63n)
const I64_MAX = (1n << 63n) - 1n
const PAGE = Format.PAGE

/** Why `decode` could not give these pages and globals back unchanged, or `undefined`. */
const stateProblem = (state: InstanceSnapshot["state"]): string | undefined => {
  let previous = -1
  for (const p of state.pages) {
    if (!Number.isInteger(p.index) || p.index < 0) return `page index must be a non-negative integer, got ${p.index}`
    if (p.index <= previous) return `page ${p.index} is out of order or repeated (indexes must increase)`
    if (!(p.data instanceof Uint8Array) || p.data.byteLength !== PAGE)
      return `page ${p.index} must be a Uint8Array of ${PAGE} bytes`
    if ((p.index + 1) * PAGE > state.memoryBytes)
      return `page ${p.index} lies outside state.memoryBytes (${state.memoryBytes} bytes)`
    previous = p.index
  }
  for (const [name, v] of Object.entries(state.globals)) {
    if (typeof v === "bigint") {
      if (v < I64_MIN || v > I64_MAX) return `global ${name} = ${v} is outside the i64 range`
    } else if (typeof v !== "number") return `global ${name} must be a number or a bigint`
  }
  return undefined
}

/** The header of a snapshot whose payload is `body` (`compressed`: the payload stored is compressed). */
const headerOf = (snapshot: InstanceSnapshot, body: Uint8Array, compressed: boolean): Format.Header => ({
  version: snapshot.version,
  agentId: snapshot.agentId,
  moduleId: snapshot.moduleId,
  moduleHash: snapshot.moduleHash,
  lifecycle: snapshot.lifecycle,
  memoryLimit: snapshot.memoryLimit,
  memoryReservation: snapshot.memoryReservation,
  invocationCount: snapshot.invocationCount,
  takenAt: snapshot.takenAt,
  ...(snapshot.timeoutMs === undefined ? {} : { timeoutMs: snapshot.timeoutMs }),
  ...(snapshot.fuel === undefined ? {} : { fuel: snapshot.fuel }),
  ...(snapshot.critical === undefined ? {} : { critical: snapshot.critical }),
  memoryBytes: snapshot.state.memoryBytes,
  pageCount: snapshot.state.pages.length,
  globalCount: Object.keys(snapshot.state.globals).length,
  bodyLength: body.length,
  compressed
})

/** Why the header would not decode back to the same metadata, or `undefined`. */
const headerProblem = (header: Format.Header): string | undefined => {
  // the schema only when the fast check cannot vouch for the header (it then says why)
  const checked = Format.headerFits(header) ? undefined : Format.decodeHeader(header)
  if (checked?._tag === "Failure") return `invalid metadata: ${String(checked.failure)}`
  if (header.memoryBytes % PAGE !== 0) return `memoryBytes ${header.memoryBytes} is not a multiple of 64 KiB`
  return undefined
}

/**
 * Checks the pages of a state as `encode` does (64 KiB each, indexes
 * increasing, inside `memoryBytes`), without encoding them: `SnapshotInvalid`
 * with the same reasons. For stores that keep a snapshot in parts — the
 * codec bytes of the snapshot without its pages (which `encode` checks) plus
 * a row per page — and so never encode the pages themselves.
 */
export const validatePages = (state: InstanceSnapshot["state"]): Effect.Effect<void, SnapshotInvalid> => {
  const problem = stateProblem({ ...state, globals: {} })
  return problem === undefined ? Effect.void : Effect.fail(new SnapshotInvalid({ reason: problem }))
}

// --- encode ---

/**
 * Encodes a snapshot into the layout above. Fails with `SnapshotInvalid`
 * when `decode` could not give the snapshot back unchanged (metadata the
 * header refuses, pages that are not 64 KiB / in increasing order / inside
 * `memoryBytes`, globals outside number or i64). Page data, globals (numbers as
 * f64, i64 bigints as signed 64-bit) and metadata survive `decode`
 * unchanged. With `options.compression`, the payload is compressed; a
 * rejected `compress` is a defect (it is the caller's function, not input).
 */
export const encode = (
  snapshot: InstanceSnapshot,
  options: EncodeOptions = {}
): Effect.Effect<Uint8Array<ArrayBuffer>, SnapshotInvalid> =>
  Effect.gen(function* () {
    const problem = stateProblem(snapshot.state)
    if (problem !== undefined) return yield* new SnapshotInvalid({ reason: problem })
    const body = Format.encodeBody(snapshot.state)
    const compression = options.compression
    const payload = compression === undefined ? body : yield* Effect.promise(() => compression.compress(body))
    const header = headerOf(snapshot, body, compression !== undefined)
    const invalid = headerProblem(header)
    if (invalid !== undefined) return yield* new SnapshotInvalid({ reason: invalid })
    return Format.writeFrame(header, payload)
  })

// --- decode ---

const corrupt = (reason: string) => Effect.fail(new SnapshotCorrupt({ reason }))

/**
 * Decodes bytes written by `encode`. Checks, in order: magic, lengths
 * (truncation), CRC-32, format version, header; then the module hash
 * against `options.expectedModuleHash`; then decompresses and parses the
 * payload strictly (page indices increasing and inside `memoryBytes`, 64 KiB
 * pages, counts as the header says, no trailing bytes).
 *
 * Fails with `SnapshotCorrupt { reason }` for anything malformed (any
 * flipped byte is caught by the CRC-32, which detects every error burst of
 * up to 32 bits), a compressed snapshot without `options.compression`, or a
 * rejected `decompress`; with `SnapshotMismatch { expected, actual }` for a
 * snapshot of another module.
 */
export const decode = (
  bytes: Uint8Array,
  options: DecodeOptions = {}
): Effect.Effect<InstanceSnapshot, SnapshotCorrupt | SnapshotMismatch> =>
  Effect.gen(function* () {
    const frame = Format.readFrame(bytes)
    if (Result.isFailure(frame)) return yield* corrupt(frame.failure)
    const { header, payload } = frame.success
    if (options.expectedModuleHash !== undefined && header.moduleHash !== options.expectedModuleHash) {
      return yield* Effect.fail(
        new SnapshotMismatch({ expected: options.expectedModuleHash, actual: header.moduleHash })
      )
    }
    let body: Uint8Array = payload
    if (header.compressed) {
      const compression = options.compression
      if (compression === undefined)
        return yield* corrupt("the payload is compressed and no decompress function was given")
      body = yield* Effect.tryPromise({
        try: () => compression.decompress(payload.slice()),
        catch: (e) =>
          new SnapshotCorrupt({ reason: `decompression failed: ${e instanceof Error ? e.message : String(e)}` })
      })
    }
    const state = Format.readBody(header, body)
    if (Result.isFailure(state)) return yield* corrupt(state.failure)
    const { memoryBytes: _m, pageCount: _p, globalCount: _g, bodyLength: _b, compressed: _c, ...metadata } = header
    const snapshot: InstanceSnapshot = { ...metadata, state: state.success }
    return snapshot
  })
