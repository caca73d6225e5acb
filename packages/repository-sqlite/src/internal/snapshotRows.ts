/**
 * How an `InstanceSnapshot` maps to rows — the only place that knows, so it
 * can be swapped for the domain's snapshot codec: one `snapshots` row with a
 * JSON header (every field but the page bytes) and one `snapshot_pages` row
 * per non-zero 64 KiB page holding its bytes as a BLOB.
 *
 * Globals are `[name, "number", hex of the f64 bits]` (keeps -0, NaN,
 * ±Infinity, which JSON cannot) or `[name, "bigint", decimal]` (i64 values
 * beyond 2^53). Headers are decoded with a Schema: a corrupt one is an error,
 * never a partial snapshot.
 *
 * @internal
 */
import { AgentId, InstanceState, ModuleHash, ModuleId, type InstanceSnapshot } from "@agent-runtime/domain"
import * as Schema from "effect/Schema"
import { Invalid } from "./sql.js"

const FiniteNumber = Schema.Number.check(Schema.isFinite())

const Header = Schema.Struct({
  format: Schema.Literal(1),
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
  pages: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
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

/** Throws `Invalid` if the snapshot cannot be stored (non-finite header numbers, bad pages or globals). */
export const validate = (snapshot: InstanceSnapshot): void => {
  for (const field of ["version", "memoryLimit", "memoryReservation", "invocationCount", "takenAt"] as const) {
    if (!Number.isFinite(snapshot[field])) throw new Invalid(`${field} must be a finite number, got ${snapshot[field]}`)
  }
  if (!Number.isFinite(snapshot.state.memoryBytes)) throw new Invalid("state.memoryBytes must be a finite number")
  for (const p of snapshot.state.pages) {
    if (!Number.isInteger(p.index) || p.index < 0) throw new Invalid(`page index must be a non-negative integer, got ${p.index}`)
    if (!(p.data instanceof Uint8Array)) throw new Invalid(`page ${p.index} data must be a Uint8Array`)
  }
  for (const [name, v] of Object.entries(snapshot.state.globals)) {
    if (typeof v !== "number" && typeof v !== "bigint") throw new Invalid(`global ${name} must be a number or a bigint`)
  }
}

/** The JSON header of a snapshot. */
export const encodeHeader = (snapshot: InstanceSnapshot): string => {
  const header: Header = {
    format: 1,
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
    pages: snapshot.state.pages.length,
    globals: Object.entries(snapshot.state.globals).map(([name, v]) =>
      typeof v === "bigint" ? ([name, "bigint", v.toString()] as const) : ([name, "number", f64ToHex(v)] as const)
    )
  }
  return JSON.stringify(header)
}

/** A snapshot from its header and page rows; a corrupt header or a missing page throws `Invalid`. */
export const decode = (
  agentId: string,
  headerJson: string,
  pages: ReadonlyArray<{ readonly page_index: number; readonly data: Uint8Array }>
): InstanceSnapshot => {
  const decoded = decodeHeader(headerJson)
  if (decoded._tag === "Failure") throw new Invalid(`snapshot of agent ${JSON.stringify(agentId)} has a corrupt header`)
  const h = decoded.value
  if (pages.length !== h.pages) {
    throw new Invalid(`snapshot of agent ${JSON.stringify(agentId)} has ${pages.length} pages, its header says ${h.pages}`)
  }
  const globals: Record<string, number | bigint> = {}
  for (const [name, kind, value] of h.globals) globals[name] = kind === "bigint" ? BigInt(value) : hexToF64(value)
  return {
    version: h.version,
    agentId: h.agentId,
    moduleId: h.moduleId,
    moduleHash: h.moduleHash,
    lifecycle: h.lifecycle,
    memoryLimit: h.memoryLimit,
    memoryReservation: h.memoryReservation,
    invocationCount: h.invocationCount,
    takenAt: h.takenAt,
    state: {
      memoryBytes: h.memoryBytes,
      pages: pages.map((p) => ({
        index: p.page_index,
        data: new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength)
      })),
      globals
    }
  }
}
