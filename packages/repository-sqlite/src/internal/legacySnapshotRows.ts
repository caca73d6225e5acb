/**
 * Reader of the snapshot rows of schema versions 1–2 — a `snapshots` row
 * with a JSON header (every field but the page bytes; globals as
 * `[name, "number", hex of the f64 bits]` or `[name, "bigint", decimal]`) and
 * a `snapshot_pages` row per non-zero 64 KiB page — used only by migration 3,
 * which converts them to `SnapshotCodec` BLOBs. Nothing writes this format
 * any more.
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

const hexToF64 = (hex: string): number => Buffer.from(hex, "hex").readDoubleBE()

/** A snapshot from its version 1–2 header and page rows; a corrupt header or a missing page throws `Invalid`. */
export const decode = (
  agentId: string,
  headerJson: string,
  pages: ReadonlyArray<{ readonly page_index: number; readonly data: Uint8Array }>
): InstanceSnapshot => {
  const decoded = decodeHeader(headerJson)
  if (decoded._tag === "Failure") throw new Invalid(`snapshot of agent ${JSON.stringify(agentId)} has a corrupt header`)
  const h = decoded.value
  if (pages.length !== h.pages) {
    throw new Invalid(
      `snapshot of agent ${JSON.stringify(agentId)} has ${pages.length} pages, its header says ${h.pages}`
    )
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
