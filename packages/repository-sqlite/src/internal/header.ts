/**
 * The binary header row (schema version 7, `layout = 2`): everything of an
 * `InstanceSnapshot` but its pages — metadata, `memoryBytes`, the mutable
 * globals — in fixed little-endian fields, CRC-32-checked, instead of the
 * `SnapshotCodec` frame with its JSON header (`layout = 1`), which costs a
 * `JSON.stringify`, a UTF-8 encode and a JS CRC loop on every save after a
 * call. Written only when `encode` can vouch that the snapshot's header is
 * one the codec accepts too (the same checks as the codec's fast header
 * check); otherwise the caller stores the codec form (`layout = 1`), which
 * then refuses or accepts it exactly as before.
 *
 * Layout (bytes; integers little-endian, numbers IEEE-754 f64 with their
 * exact bits, so -0, NaN payloads and ±Infinity globals come back as they were):
 *
 * ```
 *  0  4  magic "ARSH"
 *  4  1  format version (1)
 *  5  1  lifecycle (index into LIFECYCLES)
 *  6  1  flags: 1 timeoutMs present, 2 fuel present, 4 critical present, 8 critical is true
 *  7  1  reserved (0)
 *  8  8  version        16  8 memoryLimit      24  8 memoryReservation
 * 32  8  invocationCount 40 8 takenAt          48  8 memoryBytes
 * 56  8  timeoutMs (0 when absent)             64  8 fuel (0 when absent)
 * 72  agentId, moduleId, moduleHash: each u32 byte length + UTF-8
 *     u32 global count; per global: u32 name length, UTF-8 name, u8 tag (0 f64, 1 i64), 8 value bytes
 * end 4  CRC-32 (zlib's) of every byte before it
 * ```
 *
 * A row that fails any check (length, magic, version, CRC, a lifecycle or
 * tag it does not know, non-UTF-8 text, a repeated global, trailing bytes)
 * is refused with a reason (a thrown string); the repository turns it into
 * `RepositoryError`.
 *
 * @internal
 */
import { InstanceState, type InstanceSnapshot } from "@agent-runtime/domain"
import * as Schema from "effect/Schema"
import * as zlib from "node:zlib"

/** `instance_snapshots.layout` of a row whose `snapshot` is this binary header. */
export const LAYOUT = 2

/** Format version of the binary header (byte 4). */
export const VERSION = 1

/**
 * Lifecycle codes (byte 5): fixed here, not read from the domain's list, so
 * a state the domain adds later never shifts them (a snapshot in a state not
 * listed is stored in the codec form instead).
 */
const LIFECYCLES: ReadonlyArray<string> = ["Starting", "Running", "Paused", "Stopping", "Stopped", "Failed", "Critical"]
const lifecycleCode = new Map(LIFECYCLES.map((s, i) => [s, i]))
const isInstanceState = Schema.is(InstanceState)

const MAGIC = 0x48535241 // "ARSH" read as a little-endian u32
const FIXED = 72
const CHECKSUM = 4
const PAGE = 65_536
const TIMEOUT = 1
const FUEL = 2
const CRITICAL = 4
const CRITICAL_TRUE = 8
const TAG_NUMBER = 0
const TAG_I64 = 1
const I64_MIN = -(1n << 63n)
const I64_MAX = (1n << 63n) - 1n

/**
 * Whether a string is well-formed UTF-16 (no lone surrogate): the codec's JSON
 * header keeps a lone surrogate of an id exactly, UTF-8 cannot, so such a
 * snapshot is left to the codec form.
 */
const wellFormed = (v: string): boolean => (v as unknown as { isWellFormed(): boolean }).isWellFormed()

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)
const count = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0

/**
 * The binary header of `snapshot` (its pages are not looked at), or
 * `undefined` when these checks cannot vouch that the codec would accept it
 * and give it back unchanged (then store the codec form, which gives the
 * reason if it refuses): well-formed strings (no lone surrogate), a
 * safe-integer `version`, string ids, a listed lifecycle, finite numbers,
 * optional fields absent or valid, `memoryBytes` a whole number of 64 KiB
 * pages, globals numbers or bigints in the i64 range.
 */
export const encode = (snapshot: InstanceSnapshot): Buffer | undefined => {
  const s = snapshot
  const lifecycle = lifecycleCode.get(s.lifecycle as string)
  if (
    lifecycle === undefined ||
    !(typeof s.version === "number" && Number.isSafeInteger(s.version)) ||
    typeof s.agentId !== "string" ||
    typeof s.moduleId !== "string" ||
    typeof s.moduleHash !== "string" ||
    !wellFormed(s.agentId) ||
    !wellFormed(s.moduleId) ||
    !wellFormed(s.moduleHash) ||
    !finite(s.memoryLimit) ||
    !finite(s.memoryReservation) ||
    !finite(s.invocationCount) ||
    !finite(s.takenAt) ||
    !(s.timeoutMs === undefined || finite(s.timeoutMs)) ||
    !(s.fuel === undefined || finite(s.fuel)) ||
    !(s.critical === undefined || typeof s.critical === "boolean") ||
    !count(s.state.memoryBytes) ||
    s.state.memoryBytes % PAGE !== 0
  )
    return undefined
  const globals = s.state.globals
  let size = FIXED + 16 + CHECKSUM
  const agentBytes = Buffer.byteLength(s.agentId, "utf8")
  const moduleBytes = Buffer.byteLength(s.moduleId, "utf8")
  const hashBytes = Buffer.byteLength(s.moduleHash, "utf8")
  size += agentBytes + moduleBytes + hashBytes
  let n = 0
  for (const name in globals) {
    if (!Object.hasOwn(globals, name)) continue
    const v = globals[name]
    if (typeof v === "bigint") {
      if (v < I64_MIN || v > I64_MAX) return undefined
    } else if (typeof v !== "number") return undefined
    if (!wellFormed(name)) return undefined
    size += 4 + Buffer.byteLength(name, "utf8") + 9
    n++
  }
  const out = Buffer.allocUnsafe(size)
  out.writeUInt32LE(MAGIC, 0)
  out[4] = VERSION
  out[5] = lifecycle
  out[6] =
    (s.timeoutMs === undefined ? 0 : TIMEOUT) |
    (s.fuel === undefined ? 0 : FUEL) |
    (s.critical === undefined ? 0 : CRITICAL) |
    (s.critical === true ? CRITICAL_TRUE : 0)
  out[7] = 0
  out.writeDoubleLE(s.version, 8)
  out.writeDoubleLE(s.memoryLimit, 16)
  out.writeDoubleLE(s.memoryReservation, 24)
  out.writeDoubleLE(s.invocationCount, 32)
  out.writeDoubleLE(s.takenAt, 40)
  out.writeDoubleLE(s.state.memoryBytes, 48)
  out.writeDoubleLE(s.timeoutMs ?? 0, 56)
  out.writeDoubleLE(s.fuel ?? 0, 64)
  let at = FIXED
  at = text(out, at, s.agentId, agentBytes)
  at = text(out, at, s.moduleId, moduleBytes)
  at = text(out, at, s.moduleHash, hashBytes)
  out.writeUInt32LE(n, at)
  at += 4
  for (const name in globals) {
    if (!Object.hasOwn(globals, name)) continue
    at = text(out, at, name, Buffer.byteLength(name, "utf8"))
    const v = globals[name]!
    if (typeof v === "bigint") {
      out[at] = TAG_I64
      out.writeBigInt64LE(v, at + 1)
    } else {
      out[at] = TAG_NUMBER
      writeF64(out, at + 1, v)
    }
    at += 9
  }
  out.writeUInt32LE(zlib.crc32(out.subarray(0, at)), at)
  return out
}

const text = (out: Buffer, at: number, value: string, length: number): number => {
  out.writeUInt32LE(length, at)
  out.write(value, at + 4, length, "utf8")
  return at + 4 + length
}

/** An f64's exact bits (NaN payloads included: `Float64Array` stores the value's bits as they are). */
const f64 = new Float64Array(1)
const f64Bytes = new Uint8Array(f64.buffer)
const writeF64 = (out: Buffer, at: number, v: number): void => {
  f64[0] = v
  out.set(f64Bytes, at)
}
const readF64 = (bytes: Uint8Array, at: number): number => {
  f64Bytes.set(bytes.subarray(at, at + 8))
  return f64[0]!
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** Whether `bytes` start with this header's magic (else the row is a codec frame or something else). */
export const isBinary = (bytes: Uint8Array): boolean =>
  bytes.length >= 4 && bytes[0] === 0x41 && bytes[1] === 0x52 && bytes[2] === 0x53 && bytes[3] === 0x48

/**
 * The snapshot (without pages: `state.pages` is empty) a binary header row
 * holds; throws the reason (a string) when the row is not one this format
 * wrote unchanged.
 */
export const decode = (bytes: Uint8Array): InstanceSnapshot => {
  if (bytes.length < FIXED + 16 + CHECKSUM)
    throw `the header row has ${bytes.length} bytes, too short for a header (truncated)`
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.readUInt32LE(0) !== MAGIC) throw "the header row is not a binary header (bad magic)"
  const end = b.length - CHECKSUM
  const stored = b.readUInt32LE(end)
  const actual = zlib.crc32(b.subarray(0, end))
  if (stored !== actual)
    throw `the header row's checksum mismatch: stored ${stored.toString(16)}, computed ${actual.toString(16)} (damaged or truncated)`
  if (b[4] !== VERSION) throw `unsupported binary header version ${b[4]} (this build reads ${VERSION})`
  const lifecycle = LIFECYCLES[b[5]!]
  if (lifecycle === undefined || !isInstanceState(lifecycle)) throw `unknown lifecycle code ${b[5]}`
  const flags = b[6]!
  if ((flags & ~(TIMEOUT | FUEL | CRITICAL | CRITICAL_TRUE)) !== 0 || b[7] !== 0) throw "reserved header bits are set"
  if ((flags & CRITICAL_TRUE) !== 0 && (flags & CRITICAL) === 0) throw "critical is true but absent"
  const version = b.readDoubleLE(8)
  const memoryBytes = b.readDoubleLE(48)
  if (!Number.isSafeInteger(version)) throw `version ${version} is not an integer`
  if (!count(memoryBytes) || memoryBytes % PAGE !== 0) throw `memoryBytes ${memoryBytes} is not a whole number of pages`
  const numbers = [16, 24, 32, 40, 56, 64].map((at) => b.readDoubleLE(at))
  if (!numbers.every(Number.isFinite)) throw "a header number is not finite"
  const [memoryLimit, memoryReservation, invocationCount, takenAt, timeoutMs, fuel] = numbers as [
    number,
    number,
    number,
    number,
    number,
    number
  ]
  let at = FIXED
  const readText = (what: string): string => {
    if (at + 4 > end) throw `the header row is truncated reading ${what}`
    const length = b.readUInt32LE(at)
    if (at + 4 + length > end) throw `the header row is truncated reading ${what}`
    let value: string
    try {
      value = utf8.decode(b.subarray(at + 4, at + 4 + length))
    } catch {
      throw `${what} is not UTF-8`
    }
    at += 4 + length
    return value
  }
  const agentId = readText("the agent id")
  const moduleId = readText("the module id")
  const moduleHash = readText("the module hash")
  if (at + 4 > end) throw "the header row is truncated reading the global count"
  const globalCount = b.readUInt32LE(at)
  at += 4
  const globals: Record<string, number | bigint> = {}
  for (let i = 0; i < globalCount; i++) {
    const name = readText(`global name ${i}`)
    if (Object.hasOwn(globals, name)) throw `global ${name} repeated`
    if (at + 9 > end) throw `the header row is truncated reading global ${name}`
    const tag = b[at]
    if (tag === TAG_NUMBER) globals[name] = readF64(b, at + 1)
    else if (tag === TAG_I64) globals[name] = b.readBigInt64LE(at + 1)
    else throw `global ${name} has unknown type tag ${tag}`
    at += 9
  }
  if (at !== end) throw `${end - at} unexpected bytes after the globals`
  const snapshot = {
    version,
    agentId,
    moduleId,
    moduleHash,
    lifecycle,
    memoryLimit,
    memoryReservation,
    invocationCount,
    takenAt,
    ...((flags & TIMEOUT) !== 0 ? { timeoutMs } : {}),
    ...((flags & FUEL) !== 0 ? { fuel } : {}),
    ...((flags & CRITICAL) !== 0 ? { critical: (flags & CRITICAL_TRUE) !== 0 } : {}),
    state: { memoryBytes, pages: [], globals }
  }
  return snapshot as unknown as InstanceSnapshot
}
