/**
 * The byte format of a snapshot (the layout documented in `SnapshotCodec`):
 * framing (magic, version, lengths, CRC-32), the JSON header, and the
 * payload of pages and globals — written, and read strictly, with no policy
 * about what a snapshot may hold (`SnapshotCodec` decides that). Reading
 * fails with a reason string (`Result`), never with an exception.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { InstanceState } from "../AgentInstance.js"
import { AgentId, ModuleHash, ModuleId } from "../Ids.js"
import type { EngineState } from "../WasmEngine.js"

declare const TextEncoder: new () => { encode(input: string): Uint8Array }
declare const TextDecoder: new (
  label: "utf-8",
  options: { readonly fatal: boolean }
) => { decode(input: Uint8Array): string }

/** Version of the byte layout (distinct from `InstanceSnapshot.version`, which the header carries). */
export const FORMAT_VERSION = 1

const MAGIC = [0x41, 0x52, 0x53, 0x4e] as const
const PREFIX = 16
const CHECKSUM = 4
/** Bytes of a WebAssembly page (64 KiB). */
export const PAGE = 65_536
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

/** The header: the snapshot's metadata, plus what the payload holds. */
export const Header = Schema.Struct({
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
export type Header = typeof Header.Type

/** Checks an unknown value against `Header`. */
export const decodeHeader = Schema.decodeUnknownResult(Header)

const isInstanceState = Schema.is(InstanceState)
/** Lifecycle values seen, with whether the schema accepts them (a handful of literals). */
const lifecycles = new Map<string, boolean>()
const lifecycleFits = (v: unknown): boolean => {
  if (typeof v !== "string") return false
  let fits = lifecycles.get(v)
  if (fits === undefined) {
    fits = isInstanceState(v)
    if (lifecycles.size < 64) lifecycles.set(v, fits)
  }
  return fits
}
const finite = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v)
const count = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0

/**
 * A fast check that `header` passes the `Header` schema — the check
 * `encode` runs on every header it writes (after every call with
 * `snapshotAfterCalls`): plain type tests, no schema interpreter. `true` only
 * when the schema accepts it (each test is at least as strict as the
 * schema's: safe integers for `Int`, finite numbers, the lifecycle literals
 * as the schema says, optional fields absent or valid); `false` says "ask
 * the schema", which also gives the reason.
 */
export const headerFits = (header: Header): boolean =>
  typeof header.version === "number" &&
  Number.isSafeInteger(header.version) &&
  typeof header.agentId === "string" &&
  typeof header.moduleId === "string" &&
  typeof header.moduleHash === "string" &&
  lifecycleFits(header.lifecycle) &&
  finite(header.memoryLimit) &&
  finite(header.memoryReservation) &&
  finite(header.invocationCount) &&
  finite(header.takenAt) &&
  (header.timeoutMs === undefined ? !("timeoutMs" in header) : finite(header.timeoutMs)) &&
  (header.fuel === undefined ? !("fuel" in header) : finite(header.fuel)) &&
  (header.critical === undefined ? !("critical" in header) : typeof header.critical === "boolean") &&
  count(header.memoryBytes) &&
  count(header.pageCount) &&
  count(header.globalCount) &&
  count(header.bodyLength) &&
  typeof header.compressed === "boolean"

// --- a tiny growable writer / bounds-checked reader ---

class Writer {
  private buffer: Uint8Array<ArrayBuffer>
  private view: DataView
  length = 0
  /** `capacity`: bytes to allocate up front (exact when known: no growth, no copy but `finish`'s). */
  constructor(capacity = 1024) {
    this.buffer = new Uint8Array(capacity)
    this.view = new DataView(this.buffer.buffer)
  }
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
  /** The bytes written so far (a view, not a copy). */
  written(): Uint8Array {
    return this.buffer.subarray(0, this.length)
  }
  finish(): Uint8Array<ArrayBuffer> {
    return this.length === this.buffer.length ? this.buffer : this.buffer.slice(0, this.length)
  }
}

/** Thrown inside `parseBody` only; turned into a failure reason at its edge. */
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
    if (this.offset + n > this.bytes.length)
      throw new Malformed(`payload truncated reading ${what} at byte ${this.offset}`)
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

// --- write ---

/**
 * UTF-8 of global names, by name: an agent's globals are named the same in
 * every snapshot (saves after every call encode them again and again).
 * Bounded: cleared when it reaches `NAME_CACHE_LIMIT` names. The bytes are
 * only ever copied out (`Writer.bytes`), never written.
 */
const nameCache = new Map<string, Uint8Array>()
const NAME_CACHE_LIMIT = 4096

const nameBytes = (name: string): Uint8Array => {
  let bytes = nameCache.get(name)
  if (bytes === undefined) {
    if (nameCache.size >= NAME_CACHE_LIMIT) nameCache.clear()
    bytes = utf8.encode(name)
    nameCache.set(name, bytes)
  }
  return bytes
}

/** The payload: pages (index, length, bytes), then globals (name, tag, 8 value bytes). */
export const encodeBody = (state: EngineState): Uint8Array<ArrayBuffer> => {
  const globals = Object.entries(state.globals)
  const names = globals.map(([name]) => nameBytes(name))
  // the exact size, so the body is written into one buffer with no growth or copy
  let size = 8
  for (const page of state.pages) size += 8 + page.data.length
  for (const name of names) size += 4 + name.length + 9
  const w = new Writer(size)
  w.u32(state.pages.length)
  for (const page of state.pages) {
    w.u32(page.index)
    w.u32(page.data.length)
    w.bytes(page.data)
  }
  w.u32(globals.length)
  for (const [i, [, value]] of globals.entries()) {
    const encoded = names[i]!
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

/** The whole snapshot: prefix, header JSON, payload (as given, compressed or not), CRC-32 of every byte before it. */
export const writeFrame = (header: Header, payload: Uint8Array): Uint8Array<ArrayBuffer> => {
  const headerBytes = utf8.encode(JSON.stringify(header))
  const w = new Writer(PREFIX + headerBytes.length + payload.length + CHECKSUM)
  for (const b of MAGIC) w.u8(b)
  w.u16(FORMAT_VERSION)
  w.u16(0)
  w.u32(headerBytes.length)
  w.u32(payload.length)
  w.bytes(headerBytes)
  w.bytes(payload)
  w.u32(crc32(w.written()))
  return w.finish()
}

// --- read ---

/** Checks the framing and checksum, and parses the header; a failure is the reason. */
export const readFrame = (bytes: Uint8Array): Result.Result<{ header: Header; payload: Uint8Array }, string> => {
  const bad = (reason: string) => Result.fail(reason)
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
  if (version !== FORMAT_VERSION)
    return bad(`unsupported snapshot format version ${version} (this build reads ${FORMAT_VERSION})`)
  if (view.getUint16(6, true) !== 0) return bad("reserved bytes are not zero")
  let json: unknown
  try {
    json = JSON.parse(utf8Strict.decode(bytes.subarray(PREFIX, PREFIX + headerLength)))
  } catch (e) {
    return bad(`header is not UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  const header = decodeHeader(json)
  if (Result.isFailure(header)) return bad(`invalid header: ${header.failure.message}`)
  return Result.succeed({
    header: header.success,
    payload: bytes.subarray(PREFIX + headerLength, PREFIX + headerLength + payloadLength)
  })
}

const parseBody = (header: Header, body: Uint8Array): EngineState => {
  if (body.length !== header.bodyLength)
    throw new Malformed(`payload is ${body.length} bytes, header says ${header.bodyLength}`)
  if (header.memoryBytes % PAGE !== 0)
    throw new Malformed(`memoryBytes ${header.memoryBytes} is not a multiple of 64 KiB`)
  const r = new Reader(body)
  const pageCount = r.u32("page count")
  if (pageCount !== header.pageCount)
    throw new Malformed(`payload has ${pageCount} pages, header says ${header.pageCount}`)
  const pages: Array<{ index: number; data: Uint8Array }> = []
  let previous = -1
  for (let i = 0; i < pageCount; i++) {
    const index = r.u32("page index")
    if (index <= previous) throw new Malformed(`page ${index} out of order or repeated`)
    if ((index + 1) * PAGE > header.memoryBytes)
      throw new Malformed(`page ${index} lies outside ${header.memoryBytes} bytes of memory`)
    const length = r.u32("page length")
    if (length !== PAGE) throw new Malformed(`page ${index} has ${length} bytes, expected ${PAGE}`)
    pages.push({ index, data: r.take(length, "page data") })
    previous = index
  }
  const globalCount = r.u32("global count")
  if (globalCount !== header.globalCount)
    throw new Malformed(`payload has ${globalCount} globals, header says ${header.globalCount}`)
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

/** Parses the (uncompressed) payload strictly against its header; a failure is the reason. */
export const readBody = (header: Header, body: Uint8Array): Result.Result<EngineState, string> => {
  try {
    return Result.succeed(parseBody(header, body))
  } catch (e) {
    if (e instanceof Malformed) return Result.fail(e.reason)
    throw e
  }
}
