import { describe, expect, it } from "@effect/vitest"
import { planBudget, readModule, rewriteModule, TABLE_ENTRY_BYTES } from "../src/index.js"
import { unwrap } from "./helpers/Agents.js"
import { wat } from "./helpers/Wat.js"

const PAGE = 65_536

/** The table bomb: one funcref table, an export that grows it. */
const bomb = (table: string, memory = "") => `
  (module
    ${memory}
    ${table}
    (func (export "grow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0)))
    (func (export "size") (result i32) (table.size 0)))`

const exportsOf = (bytes: Uint8Array) =>
  new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)).exports as unknown as {
    grow: (n: number) => number
    size: () => number
    memory?: WebAssembly.Memory
  }

describe("table cap (issue 12 item 1)", () => {
  it("table.grow(9_999_999) returns -1 inside the guest once the module is rewritten for a budget", async () => {
    const bytes = await wat(bomb(`(table 1 funcref)`))
    expect(exportsOf(bytes).grow(1000)).toBe(1) // uncapped: grows
    const r = unwrap(rewriteModule(bytes, { maxMemoryPages: 16 }))
    const table = r.tables[0]!
    expect(table).toMatchObject({ index: 0, imported: false, min: 1, declaredMax: undefined })
    // no memory: the whole budget (1 MiB) is the table's
    expect(table.maxEntries).toBe((16 * PAGE) / TABLE_ENTRY_BYTES)
    const guest = exportsOf(r.bytes)
    expect(guest.grow(9_999_999)).toBe(-1)
    expect(guest.size()).toBe(1)
    expect(guest.grow(table.maxEntries - 1)).toBe(1)
    expect(guest.grow(1)).toBe(-1)
    expect(readModule(r.bytes).ok).toBe(true)
  })

  it("memory and tables together stay within the budget: memory gets whole pages, tables the rest", async () => {
    const bytes = await wat(bomb(`(table 3 funcref) (table 2 10 funcref)`, `(memory (export "memory") 1)`))
    const plan = unwrap(planBudget(unwrap(readModule(bytes)), 16))
    expect(plan.memoryPages).toBe(15)
    expect(plan.memoryPages * PAGE + plan.tableBytes).toBeLessThanOrEqual(16 * PAGE)
    expect(plan.tables.map((t) => t.maxEntries)).toEqual([
      3 + Math.floor((PAGE - 5 * TABLE_ENTRY_BYTES) / TABLE_ENTRY_BYTES / 2),
      10
    ])
    const r = unwrap(rewriteModule(bytes, { maxMemoryPages: 16, exportState: true }))
    expect(r.memory?.maxPages).toBe(15)
    const guest = exportsOf(r.bytes)
    expect(guest.grow(9_999_999)).toBe(-1)
  })

  it("a module without tables keeps the whole budget for its memory", async () => {
    const bytes = await wat(`(module (memory 1))`)
    expect(unwrap(rewriteModule(bytes, { maxMemoryPages: 16 })).memory?.maxPages).toBe(16)
  })

  it("initial tables that do not fit get no room to grow, and reports the maximum an imported table must have", async () => {
    const big = await wat(
      `(module (memory 16) (table 1 funcref) (func (export "grow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0))))`
    )
    const plan = unwrap(planBudget(unwrap(readModule(big)), 16))
    expect(plan.memoryPages * PAGE + plan.tableBytes).toBeGreaterThan(16 * PAGE) // the caller refuses it
    expect(exportsOf(unwrap(rewriteModule(big, { maxMemoryPages: 16 })).bytes).grow(1)).toBe(-1)
    const imported = await wat(`(module (import "env" "t" (table 1 funcref)))`)
    expect(unwrap(rewriteModule(imported, { maxMemoryPages: 16 })).tables[0]).toMatchObject({
      imported: true,
      maxEntries: (16 * PAGE) / TABLE_ENTRY_BYTES
    })
    const bounded = await wat(`(module (import "env" "t" (table 1 8 funcref)))`)
    expect(unwrap(rewriteModule(bounded, { maxMemoryPages: 16 })).tables[0]).toMatchObject({
      imported: true,
      maxEntries: 8
    })
  })
})
