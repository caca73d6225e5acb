/**
 * Hard table caps: an agent's budget covers its tables as well as its linear
 * memory. Every table entry costs the host memory (V8 on Node 20, 64-bit:
 * a `funcref` entry ≈ 29 bytes of RSS — 16 in the JS heap plus the indirect
 * function table's signature id and call target —, an `externref` entry ≈ 10
 * bytes; measured by growing 4 tables by 5,000,000 entries each), so a
 * 91-byte module whose export runs `table.grow(ref.null, 9_999_999)` would
 * otherwise grow the host by ~270 MiB outside any budget. With a maximum in
 * the binary, `table.grow` past it returns -1 inside the guest (core spec
 * §4.4.6 "table.grow": it fails when the new size would exceed the table
 * type's maximum).
 *
 * The budget (in pages of 64 KiB, the memory cap's unit) is split: tables
 * first get their initial entries, at `TABLE_ENTRY_BYTES` each; memory 0 gets
 * the whole pages left; the bytes left below that page boundary are the
 * tables' room to grow, shared equally by the growable ones. So
 * `memory pages × 65 536 + Σ table maxima × TABLE_ENTRY_BYTES ≤ budget`.
 * A module without tables keeps the whole budget for its memory (the memory
 * cap alone, as before). The table type is encoded as a reference type then
 * limits (spec §5.3.9): flags 0x00 (min) or 0x01 (min, max).
 *
 * @since 0.3.0
 */
import { attempt, succeed, type ReadResult } from "./ReadResult.js"
import type { ModuleInfo, TableType } from "./Types.js"
import { WasmBinaryError } from "./WasmBinaryError.js"
import { ByteReader } from "./internal/ByteReader.js"
import { ByteWriter } from "./internal/ByteWriter.js"
import { spliceSections } from "./internal/SectionSplice.js"
import { SectionId } from "./internal/Sections.js"

/**
 * Host memory charged per table entry, bytes: 32, a bound on V8's real cost
 * (≈ 29 bytes per `funcref` entry, ≈ 10 per `externref` entry, see above).
 */
export const TABLE_ENTRY_BYTES = 32

const PAGE_BYTES = 65_536

/** What the cap does to one table (table index space: imported tables first). */
export interface TableCapInfo {
  readonly index: number
  readonly imported: boolean
  /** Initial entries (unchanged). */
  readonly min: number
  /** The maximum the module declared, entries. */
  readonly declaredMax: number | undefined
  /** The maximum after the cap, entries (an imported table: the maximum the host must give it). */
  readonly maxEntries: number
}

/** How a budget is split between memory 0 and the tables. */
export interface BudgetPlan {
  /** The memory cap, pages of 64 KiB (the whole budget when the module has no table). */
  readonly memoryPages: number
  readonly tables: ReadonlyArray<TableCapInfo>
  /** Σ table maxima × `TABLE_ENTRY_BYTES`, bytes. */
  readonly tableBytes: number
}

/**
 * Splits a budget of `budgetPages` pages (64 KiB each) between memory 0 and
 * the module's tables (see the module doc). Never fails: when the initial
 * memory and the initial table entries do not fit in the budget, the tables
 * get no room to grow (their maximum is their initial size) and the memory
 * cap is its initial size — the caller compares `memoryPages × 65 536 +
 * tableBytes` with the budget to refuse such a module. An imported table cannot carry the cap: like an imported memory,
 * **the host must create it with `maximum: maxEntries`** (or check that the
 * table it provides cannot grow past it).
 */
export const planBudget = (info: ModuleInfo, budgetPages: number): ReadResult<BudgetPlan> => {
  const imported = info.imports.flatMap((i) => (i.type.kind === "table" ? [i.type as TableType] : []))
  const all = [...imported.map((t) => ({ t, imported: true })), ...info.tables.map((t) => ({ t, imported: false }))]
  if (all.length === 0) return succeed({ memoryPages: budgetPages, tables: [], tableBytes: 0 })
  const budgetBytes = budgetPages * PAGE_BYTES
  const minTableBytes = all.reduce((sum, { t }) => sum + t.min * TABLE_ENTRY_BYTES, 0)
  const memory =
    (info.imports.find((i) => i.type.kind === "memory")?.type as { minPages: number } | undefined) ?? info.memories[0]
  const hasMemory = memory !== undefined
  // never below the initial memory: initial sizes that do not fit are refused at spawn, not here
  const fit = Math.floor(Math.max(0, budgetBytes - minTableBytes) / PAGE_BYTES)
  const memoryPages = hasMemory ? Math.min(budgetPages, Math.max(memory.minPages, fit)) : 0
  const room = Math.max(0, budgetBytes - memoryPages * PAGE_BYTES - minTableBytes)
  const growable = all.filter(({ t }) => (t.max ?? Infinity) > t.min).length
  const share = growable === 0 ? 0 : Math.floor(room / TABLE_ENTRY_BYTES / growable)
  const tables: Array<TableCapInfo> = []
  for (const [index, { t, imported: isImported }] of all.entries()) {
    const maxEntries = Math.min(t.max ?? Infinity, t.min + share)
    tables.push({ index, imported: isImported, min: t.min, declaredMax: t.max, maxEntries })
  }
  const tableBytes = tables.reduce((sum, t) => sum + t.maxEntries * TABLE_ENTRY_BYTES, 0)
  return succeed({ memoryPages, tables, tableBytes })
}

/**
 * Rewrites the maximum of every table the module defines to its cap in
 * `plan` (limits flag 0x00 → 0x01); every other section is copied byte for
 * byte. Returns the bytes unchanged when every maximum is already within the
 * cap. `info` must be the reading of `bytes`.
 */
export const capTablesOf = (
  bytes: Uint8Array,
  info: ModuleInfo,
  plan: BudgetPlan
): ReadResult<Uint8Array<ArrayBuffer>> => {
  const section = info.sections.find((s) => s.id === SectionId.table)
  const defined = plan.tables.filter((t) => !t.imported)
  if (section === undefined || defined.every((t) => t.declaredMax === t.maxEntries))
    return succeed(new Uint8Array(bytes))
  let position = section.payloadOffset
  return attempt(
    () => {
      const r = new ByteReader(bytes, section.payloadOffset, section.payloadOffset + section.size)
      const count = r.count()
      const payload = new ByteWriter(16 + section.size + count * 10).u32(count)
      for (let i = 0; i < count; i++) {
        position = r.offset
        const elementType = r.u8()
        const flags = r.u8()
        const min = r.u32()
        if ((flags & 0x01) !== 0) r.u32()
        const cap = defined[i]
        if (cap === undefined || cap.min !== min)
          throw new WasmBinaryError(position, "table section does not match the plan")
        payload.u8(elementType).u8(0x01).u32(min).u32(cap.maxEntries)
      }
      return spliceSections(bytes, new Map([[SectionId.table, payload.view()]]))
    },
    () => position
  )
}
