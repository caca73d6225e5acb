/**
 * The snapshot file format: one file per agent holding an `InstanceSnapshot`.
 * The only place that knows the layout, so it can be swapped for the domain's
 * snapshot codec.
 *
 * Layout (integers little-endian):
 *
 * | offset | size | content                                             |
 * |--------|------|-----------------------------------------------------|
 * | 0      | 6    | magic `ARSNAP`                                      |
 * | 6      | 2    | format version (u16, 1)                             |
 * | 8      | 4    | header length H in bytes (u32)                      |
 * | 12     | H    | header: UTF-8 JSON (below)                          |
 * | 12 + H | Σ    | page bytes, concatenated in header order            |
 * | end-32 | 32   | SHA-256 of every byte before it                     |
 *
 * The header holds the agent id the file was saved under (`savedAs`), the
 * snapshot's fields, `pages` as `[index, byteLength]`
 * pairs and `globals` as `[name, "number", hex of the f64 bits]` (keeps -0,
 * NaN, ±Infinity) or `[name, "bigint", decimal]` (i64 values beyond 2^53).
 * Decoding checks the magic, version, lengths (truncation) and the checksum
 * (corruption) before trusting anything.
 *
 * @internal
 */
import type { AgentId as AgentIdType, InstanceSnapshot } from "@agent-runtime/domain"
import { AgentId, InstanceState, ModuleHash, ModuleId } from "@agent-runtime/domain"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"
import { Corrupt } from "./files.js"

const MAGIC = Buffer.from("ARSNAP", "latin1")
const FORMAT_VERSION = 1
const PREFIX_BYTES = 12
const CHECKSUM_BYTES = 32
/** Headers larger than this are rejected as corrupt before allocating (64 MiB). */
const MAX_HEADER_BYTES = 64 * 1024 * 1024

const FiniteNumber = Schema.Number.check(Schema.isFinite())
const Index = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

const Header = Schema.Struct({
  savedAs: AgentId,
  version: FiniteNumber,
  agentId: AgentId,
  moduleId: ModuleId,
  moduleHash: ModuleHash,
  lifecycle: InstanceState,
  memoryLimit: FiniteNumber,
  memoryReservation: FiniteNumber,
  invocationCount: FiniteNumber,
  takenAt: FiniteNumber,
  memoryBytes: FiniteNumber,
  pages: Schema.Array(Schema.Tuple([Index, Index])),
  globals: Schema.Array(
    Schema.Union([
      Schema.Tuple([Schema.String, Schema.Literal("number"), Schema.String.check(Schema.isPattern(/^[0-9a-f]{16}$/))]),
      Schema.Tuple([Schema.String, Schema.Literal("bigint"), Schema.String.check(Schema.isPattern(/^-?[0-9]+$/))])
    ])
  )
})
type Header = typeof Header.Type

const decodeHeader = Schema.decodeUnknownExit(Schema.fromJsonString(Header))

const f64ToHex = (n: number): string => {
  const b = Buffer.alloc(8)
  b.writeDoubleBE(n)
  return b.toString("hex")
}
const hexToF64 = (hex: string): number => Buffer.from(hex, "hex").readDoubleBE()

/** Why a snapshot cannot be written, or `undefined` if it can. */
export const invalidReason = (snapshot: InstanceSnapshot): string | undefined => {
  for (const field of ["version", "memoryLimit", "memoryReservation", "invocationCount", "takenAt"] as const) {
    if (!Number.isFinite(snapshot[field])) return `${field} must be a finite number, got ${snapshot[field]}`
  }
  if (!Number.isFinite(snapshot.state.memoryBytes)) return `state.memoryBytes must be a finite number`
  for (const p of snapshot.state.pages) {
    if (!Number.isInteger(p.index) || p.index < 0) return `page index must be a non-negative integer, got ${p.index}`
    if (!(p.data instanceof Uint8Array)) return `page ${p.index} data must be a Uint8Array`
  }
  for (const [name, v] of Object.entries(snapshot.state.globals)) {
    if (typeof v !== "number" && typeof v !== "bigint") return `global ${name} must be a number or a bigint`
  }
  return undefined
}

/** Encodes a snapshot into the chunks of one file (header, pages, checksum). */
export const encode = (savedAs: AgentIdType, snapshot: InstanceSnapshot): ReadonlyArray<Uint8Array> => {
  const header: Header = {
    savedAs,
    version: snapshot.version,
    agentId: snapshot.agentId,
    moduleId: snapshot.moduleId,
    moduleHash: snapshot.moduleHash,
    lifecycle: snapshot.lifecycle,
    memoryLimit: snapshot.memoryLimit,
    memoryReservation: snapshot.memoryReservation,
    invocationCount: snapshot.invocationCount,
    takenAt: snapshot.takenAt,
    memoryBytes: snapshot.state.memoryBytes,
    pages: snapshot.state.pages.map((p) => [p.index, p.data.byteLength] as const),
    globals: Object.entries(snapshot.state.globals).map(([name, v]) =>
      typeof v === "bigint" ? ([name, "bigint", v.toString()] as const) : ([name, "number", f64ToHex(v)] as const)
    )
  }
  const json = Buffer.from(JSON.stringify(header), "utf8")
  const prefix = Buffer.alloc(PREFIX_BYTES)
  MAGIC.copy(prefix, 0)
  prefix.writeUInt16LE(FORMAT_VERSION, 6)
  prefix.writeUInt32LE(json.byteLength, 8)
  const body = [prefix, json, ...snapshot.state.pages.map((p) => p.data)]
  const hash = createHash("sha256")
  for (const chunk of body) hash.update(chunk)
  return [...body, hash.digest()]
}

const readHeader = (bytes: Uint8Array, file: string, checkLengths: boolean): Header => {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.byteLength < PREFIX_BYTES) throw new Corrupt(`snapshot file ${file} is truncated (${buf.byteLength} bytes)`)
  if (!buf.subarray(0, 6).equals(MAGIC)) throw new Corrupt(`${file} is not a snapshot file (bad magic)`)
  const version = buf.readUInt16LE(6)
  if (version !== FORMAT_VERSION) {
    throw new Corrupt(`snapshot file ${file} has format version ${version}; this adapter reads version ${FORMAT_VERSION}`)
  }
  const headerLength = buf.readUInt32LE(8)
  if (headerLength > MAX_HEADER_BYTES || PREFIX_BYTES + headerLength > buf.byteLength) {
    throw new Corrupt(`snapshot file ${file} is truncated or corrupt (header of ${headerLength} bytes)`)
  }
  const decoded = decodeHeader(buf.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength).toString("utf8"))
  if (decoded._tag === "Failure") throw new Corrupt(`snapshot file ${file} has a corrupt header`)
  const header = decoded.value
  if (checkLengths) {
    const pageBytes = header.pages.reduce((n, [, length]) => n + length, 0)
    const expected = PREFIX_BYTES + headerLength + pageBytes + CHECKSUM_BYTES
    if (buf.byteLength !== expected) {
      throw new Corrupt(`snapshot file ${file} is truncated or corrupt (${buf.byteLength} bytes, expected ${expected})`)
    }
  }
  return header
}

/** The agent id a file was saved under, from its header (the header alone is read and checked). */
export const headerSavedAs = (prefixAndHeader: Uint8Array, file: string): AgentIdType =>
  readHeader(prefixAndHeader, file, false).savedAs

/** The byte length of prefix + header, from the 12-byte prefix; `undefined` if too short. */
export const headerEnd = (prefix: Uint8Array): number | undefined =>
  prefix.byteLength < PREFIX_BYTES ? undefined : PREFIX_BYTES + Buffer.from(prefix.buffer, prefix.byteOffset, PREFIX_BYTES).readUInt32LE(8)

/**
 * Decodes a whole file into the id it was saved under and the snapshot;
 * truncation, corruption or a bad checksum throw `Corrupt` naming the file.
 */
export const decode = (bytes: Uint8Array, file: string): { readonly savedAs: AgentIdType; readonly snapshot: InstanceSnapshot } => {
  const header = readHeader(bytes, file, true)
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const checksumAt = buf.byteLength - CHECKSUM_BYTES
  const digest = createHash("sha256").update(buf.subarray(0, checksumAt)).digest()
  if (!digest.equals(buf.subarray(checksumAt))) throw new Corrupt(`snapshot file ${file} is corrupt (checksum mismatch)`)
  let offset = PREFIX_BYTES + buf.readUInt32LE(8)
  const pages = header.pages.map(([index, length]) => {
    // a copy: the caller owns its pages, independent of the file buffer
    const data = new Uint8Array(buf.subarray(offset, offset + length))
    offset += length
    return { index, data }
  })
  const globals: Record<string, number | bigint> = {}
  for (const [name, kind, value] of header.globals) globals[name] = kind === "bigint" ? BigInt(value) : hexToF64(value)
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
    state: { memoryBytes: header.memoryBytes, pages, globals }
  }
  return { savedAs: header.savedAs, snapshot }
}
