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
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { InstanceState } from "./AgentInstance.js"
import { AgentId, ModuleHash, ModuleId } from "./Ids.js"
import type { InstanceSnapshot } from "./InstanceRepository.js"
import type { EngineState } from "./WasmEngine.js"

declare const TextEncoder: new () => { encode(input: string): Uint8Array }
declare const TextDecoder: new (label: "utf-8", options: { readonly fatal: boolean }) => { decode(input: Uint8Array): string }

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
export const FORMAT_VERSION = 1

const MAGIC = [0x41, 0x52, 0x53, 0x4e] as const
const PREFIX = 16
const CHECKSUM = 4
const PAGE = 65_536
const TAG_NUMBER = 0
const TAG_I64 = 1

// --- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), table-driven ---

const CRC_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 of `bytes` as an unsigned 32-bit number (the value of zlib's `crc32`). */
export const crc32 = (bytes: Uint8Array): number => {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = (CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

// --- header ---

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const Header = Schema.Struct({
  version: Schema.Int,
  agentId: AgentId,
  moduleId: ModuleId,
  moduleHash: ModuleHash,
  lifecycle: InstanceState,
  memoryLimit: Schema.Finite,
  memoryReservation: Schema.Finite,
  invocationCount: Schema.Finite,
  takenAt: Schema.Finite,
  timeoutMs: Schema.optional(Schema.Finite),
  fuel: Schema.optional(Schema.Finite),
  critical: Schema.optional(Schema.Boolean),
  memoryBytes: Count,
  pageCount: Count,
  globalCount: Count,
  bodyLength: Count,
  compressed: Schema.Boolean
})
type Header = typeof Header.Type

const decodeHeader = Schema.decodeUnknownResult(Header)

// --- a tiny growable writer / bounds-checked reader ---

class Writer {
  private buffer = new Uint8Array(1024)
  private view = new DataView(this.buffer.buffer)
  length = 0
  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return
    let size = this.buffer.length * 2
    while (size < this.length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buffer.subarray(0, this.length))
    this.buffer = next
    this.view = new DataView(next.buffer)
  }
  u8(v: number): void {
    this.reserve(1)
    this.view.setUint8(this.length, v)
    this.length += 1
  }
  u16(v: number): void {
    this.reserve(2)
    this.view.setUint16(this.length, v, true)
    this.length += 2
  }
  u32(v: number): void {
    this.reserve(4)
    this.view.setUint32(this.length, v, true)
    this.length += 4
  }
  f64(v: number): void {
    this.reserve(8)
    this.view.setFloat64(this.length, v, true)
    this.length += 8
  }
  s64(v: bigint): void {
    this.reserve(8)
    this.view.setBigInt64(this.length, BigInt.asIntN(64, v), true)
    this.length += 8
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length)
    this.buffer.set(b, this.length)
    this.length += b.length
  }
  finish(): Uint8Array<ArrayBuffer> {
    return this.buffer.slice(0, this.length)
  }
}

/** Thrown inside `parseBody` only; turned into `SnapshotCorrupt` at its edge. */
class Malformed {
  constructor(readonly reason: string) {}
}

class Reader {
  private readonly view: DataView
  offset = 0
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  private need(n: number, what: string): void {
    if (this.offset + n > this.bytes.length) throw new Malformed(`payload truncated reading ${what} at byte ${this.offset}`)
  }
  u8(what: string): number {
    this.need(1, what)
    return this.view.getUint8(this.offset++)
  }
  u32(what: string): number {
    this.need(4, what)
    const v = this.view.getUint32(this.offset, true)
    this.offset += 4
    return v
  }
  f64(what: string): number {
    this.need(8, what)
    const v = this.view.getFloat64(this.offset, true)
    this.offset += 8
    return v
  }
  s64(what: string): bigint {
    this.need(8, what)
    const v = this.view.getBigInt64(this.offset, true)
    this.offset += 8
    return v
  }
  take(n: number, what: string): Uint8Array {
    this.need(n, what)
    const b = this.bytes.slice(this.offset, this.offset + n)
    this.offset += n
    return b
  }
}

const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder("utf-8", { fatal: true })

// --- encode ---

const encodeBody = (state: EngineState): Uint8Array<ArrayBuffer> => {
  const w = new Writer()
  w.u32(state.pages.length)
  for (const page of state.pages) {
    w.u32(page.index)
    w.u32(page.data.length)
    w.bytes(page.data)
  }
  const globals = Object.entries(state.globals)
  w.u32(globals.length)
  for (const [name, value] of globals) {
    const encoded = utf8.encode(name)
    w.u32(encoded.length)
    w.bytes(encoded)
    if (typeof value === "bigint") {
      w.u8(TAG_I64)
      w.s64(value)
    } else {
      w.u8(TAG_NUMBER)
      w.f64(value)
    }
  }
  return w.finish()
}

const I64_MIN = -(1n << 63n)
const I64_MAX = (1n << 63n) - 1n

/** Why `decode` could not give these pages and globals back unchanged, or `undefined`. */
const stateProblem = (state: InstanceSnapshot["state"]): string | undefined => {
  let previous = -1
  for (const p of state.pages) {
    if (!Number.isInteger(p.index) || p.index < 0) return `page index must be a non-negative integer, got ${p.index}`
    if (p.index <= previous) return `page ${p.index} is out of order or repeated (indexes must increase)`
    if (!(p.data instanceof Uint8Array) || p.data.byteLength !== PAGE) return `page ${p.index} must be a Uint8Array of ${PAGE} bytes`
    if ((p.index + 1) * PAGE > state.memoryBytes) return `page ${p.index} lies outside state.memoryBytes (${state.memoryBytes} bytes)`
    previous = p.index
  }
  for (const [name, v] of Object.entries(state.globals)) {
    if (typeof v === "bigint") {
      if (v < I64_MIN || v > I64_MAX) return `global ${name} = ${v} is outside the i64 range`
    } else if (typeof v !== "number") return `global ${name} must be a number or a bigint`
  }
  return undefined
}

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
    const body = encodeBody(snapshot.state)
    const compression = options.compression
    const payload = compression === undefined ? body : yield* Effect.promise(() => compression.compress(body))
    const header: Header = {
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
      compressed: compression !== undefined
    }
    const checked = decodeHeader(header)
    if (checked._tag === "Failure") return yield* new SnapshotInvalid({ reason: `invalid metadata: ${String(checked.failure)}` })
    if (header.memoryBytes % PAGE !== 0) {
      return yield* new SnapshotInvalid({ reason: `memoryBytes ${header.memoryBytes} is not a multiple of 64 KiB` })
    }
    const headerBytes = utf8.encode(JSON.stringify(header))
    const w = new Writer()
    for (const b of MAGIC) w.u8(b)
    w.u16(FORMAT_VERSION)
    w.u16(0)
    w.u32(headerBytes.length)
    w.u32(payload.length)
    w.bytes(headerBytes)
    w.bytes(payload)
    const unsigned = w.finish()
    w.u32(crc32(unsigned))
    return w.finish()
  })

// --- decode ---

const corrupt = (reason: string) => Effect.fail(new SnapshotCorrupt({ reason }))

/** Checks the framing and checksum, and parses the header. */
const readFrame = (bytes: Uint8Array): Result.Result<{ header: Header; payload: Uint8Array }, SnapshotCorrupt> => {
  const bad = (reason: string) => Result.fail(new SnapshotCorrupt({ reason }))
  if (bytes.length < PREFIX + CHECKSUM) return bad(`${bytes.length} bytes is shorter than the smallest snapshot`)
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return bad("not a snapshot (bad magic)")
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = view.getUint32(8, true)
  const payloadLength = view.getUint32(12, true)
  if (PREFIX + headerLength + payloadLength + CHECKSUM !== bytes.length) {
    return bad(
      `length mismatch: header ${headerLength} + payload ${payloadLength} bytes need ${PREFIX + headerLength + payloadLength + CHECKSUM}, got ${bytes.length} (truncated?)`
    )
  }
  const stored = view.getUint32(bytes.length - CHECKSUM, true)
  const actual = crc32(bytes.subarray(0, bytes.length - CHECKSUM))
  if (stored !== actual) return bad(`checksum mismatch: stored ${stored.toString(16)}, computed ${actual.toString(16)}`)
  const version = view.getUint16(4, true)
  if (version !== FORMAT_VERSION) return bad(`unsupported snapshot format version ${version} (this build reads ${FORMAT_VERSION})`)
  if (view.getUint16(6, true) !== 0) return bad("reserved bytes are not zero")
  let json: unknown
  try {
    json = JSON.parse(utf8Strict.decode(bytes.subarray(PREFIX, PREFIX + headerLength)))
  } catch (e) {
    return bad(`header is not UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  const header = decodeHeader(json)
  if (Result.isFailure(header)) return bad(`invalid header: ${header.failure.message}`)
  return Result.succeed({ header: header.success, payload: bytes.subarray(PREFIX + headerLength, PREFIX + headerLength + payloadLength) })
}

const parseBody = (header: Header, body: Uint8Array): EngineState => {
  if (body.length !== header.bodyLength) throw new Malformed(`payload is ${body.length} bytes, header says ${header.bodyLength}`)
  if (header.memoryBytes % PAGE !== 0) throw new Malformed(`memoryBytes ${header.memoryBytes} is not a multiple of 64 KiB`)
  const r = new Reader(body)
  const pageCount = r.u32("page count")
  if (pageCount !== header.pageCount) throw new Malformed(`payload has ${pageCount} pages, header says ${header.pageCount}`)
  const pages: Array<{ index: number; data: Uint8Array }> = []
  let previous = -1
  for (let i = 0; i < pageCount; i++) {
    const index = r.u32("page index")
    if (index <= previous) throw new Malformed(`page ${index} out of order or repeated`)
    if ((index + 1) * PAGE > header.memoryBytes) throw new Malformed(`page ${index} lies outside ${header.memoryBytes} bytes of memory`)
    const length = r.u32("page length")
    if (length !== PAGE) throw new Malformed(`page ${index} has ${length} bytes, expected ${PAGE}`)
    pages.push({ index, data: r.take(length, "page data") })
    previous = index
  }
  const globalCount = r.u32("global count")
  if (globalCount !== header.globalCount) throw new Malformed(`payload has ${globalCount} globals, header says ${header.globalCount}`)
  const globals: Record<string, number | bigint> = {}
  for (let i = 0; i < globalCount; i++) {
    const length = r.u32("global name length")
    let name: string
    try {
      name = utf8Strict.decode(r.take(length, "global name"))
    } catch {
      throw new Malformed(`global name ${i} is not UTF-8`)
    }
    if (Object.hasOwn(globals, name)) throw new Malformed(`global ${name} repeated`)
    const tag = r.u8("global tag")
    if (tag === TAG_NUMBER) globals[name] = r.f64("global value")
    else if (tag === TAG_I64) globals[name] = r.s64("global value")
    else throw new Malformed(`global ${name} has unknown type tag ${tag}`)
  }
  if (r.offset !== body.length) throw new Malformed(`${body.length - r.offset} unexpected bytes after the globals`)
  return { memoryBytes: header.memoryBytes, pages, globals }
}

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
    const frame = readFrame(bytes)
    if (Result.isFailure(frame)) return yield* Effect.fail(frame.failure)
    const { header, payload } = frame.success
    if (options.expectedModuleHash !== undefined && header.moduleHash !== options.expectedModuleHash) {
      return yield* Effect.fail(new SnapshotMismatch({ expected: options.expectedModuleHash, actual: header.moduleHash }))
    }
    let body: Uint8Array = payload
    if (header.compressed) {
      const compression = options.compression
      if (compression === undefined) return yield* corrupt("the payload is compressed and no decompress function was given")
      body = yield* Effect.tryPromise({
        try: () => compression.decompress(payload.slice()),
        catch: (e) => new SnapshotCorrupt({ reason: `decompression failed: ${e instanceof Error ? e.message : String(e)}` })
      })
    }
    let state: EngineState
    try {
      state = parseBody(header, body)
    } catch (e) {
      if (e instanceof Malformed) return yield* corrupt(e.reason)
      throw e
    }
    const snapshot: InstanceSnapshot = {
      version: header.version,
      agentId: header.agentId,
      moduleId: header.moduleId,
      moduleHash: header.moduleHash,
      lifecycle: header.lifecycle,
      memoryLimit: header.memoryLimit,
      memoryReservation: header.memoryReservation,
      invocationCount: header.invocationCount,
      takenAt: header.takenAt,
      ...(header.timeoutMs === undefined ? {} : { timeoutMs: header.timeoutMs }),
      ...(header.fuel === undefined ? {} : { fuel: header.fuel }),
      ...(header.critical === undefined ? {} : { critical: header.critical }),
      state
    }
    return snapshot
  })
