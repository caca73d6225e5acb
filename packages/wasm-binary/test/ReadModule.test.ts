import { describe, expect, it } from "@effect/vitest"
import { appendCustomSection, customSections, functionType, readModule, type ModuleInfo } from "../src/index.js"
import { wat } from "./helpers/Wat.js"

const ok = (bytes: Uint8Array): ModuleInfo => {
  const r = readModule(bytes)
  if (!r.ok) throw new Error(`expected ok, got ${r.error.message}`)
  return r.value
}

describe("readModule (hand-written modules)", () => {
  it("resolves full types of imports and exports of every kind", async () => {
    const bytes = await wat(`
      (module
        (type $t0 (func (param i32 i64) (result f32)))
        (import "env" "f" (func $f (type $t0)))
        (import "env" "tbl" (table 2 10 funcref))
        (import "env" "mem" (memory 1 4 shared))
        (import "env" "g" (global $g i64))
        (import "env" "gm" (global $gm (mut f64)))
        (import "env" "e" (tag $e (param i32)))
        (table $t 3 externref)
        (global $x (mut v128) (v128.const i64x2 1 2))
        (global $y funcref (ref.func $h))
        (global $z i64 (global.get $g))
        (tag $e2 (param f64 f32))
        (func $h (param v128 funcref externref) (result i32 i64) (i32.const 1) (i64.const 2))
        (export "f" (func $f))
        (export "h" (func $h))
        (export "tbl" (table 0))
        (export "t" (table $t))
        (export "mem" (memory 0))
        (export "g" (global $g))
        (export "x" (global $x))
        (export "e" (tag $e))
        (export "e2" (tag $e2))
        (elem declare func $h))`)
    expect(WebAssembly.validate(bytes)).toBe(true)
    const m = ok(bytes)
    expect(m.imports).toEqual([
      { module: "env", name: "f", type: { kind: "function", params: ["i32", "i64"], results: ["f32"] } },
      { module: "env", name: "tbl", type: { kind: "table", elementType: "funcref", min: 2, max: 10 } },
      { module: "env", name: "mem", type: { kind: "memory", minPages: 1, maxPages: 4, shared: true, memory64: false } },
      { module: "env", name: "g", type: { kind: "global", valueType: "i64", mutable: false } },
      { module: "env", name: "gm", type: { kind: "global", valueType: "f64", mutable: true } },
      { module: "env", name: "e", type: { kind: "tag", params: ["i32"] } }
    ])
    expect(m.exports).toEqual([
      { name: "f", index: 0, type: { kind: "function", params: ["i32", "i64"], results: ["f32"] } },
      {
        name: "h",
        index: 1,
        type: { kind: "function", params: ["v128", "funcref", "externref"], results: ["i32", "i64"] }
      },
      { name: "tbl", index: 0, type: { kind: "table", elementType: "funcref", min: 2, max: 10 } },
      { name: "t", index: 1, type: { kind: "table", elementType: "externref", min: 3, max: undefined } },
      { name: "mem", index: 0, type: { kind: "memory", minPages: 1, maxPages: 4, shared: true, memory64: false } },
      { name: "g", index: 0, type: { kind: "global", valueType: "i64", mutable: false } },
      { name: "x", index: 2, type: { kind: "global", valueType: "v128", mutable: true } },
      { name: "e", index: 0, type: { kind: "tag", params: ["i32"] } },
      { name: "e2", index: 1, type: { kind: "tag", params: ["f64", "f32"] } }
    ])
    expect(m.functions.map((t) => m.types[t])).toEqual([
      { params: ["v128", "funcref", "externref"], results: ["i32", "i64"] }
    ])
    expect(m.tags).toEqual([{ params: ["f64", "f32"] }])
    expect(m.tables).toEqual([{ elementType: "externref", min: 3, max: undefined }])
    expect(m.memories).toEqual([])
    expect(m.globals.map((g) => [g.index, g.type])).toEqual([
      [2, { valueType: "v128", mutable: true }],
      [3, { valueType: "funcref", mutable: false }],
      [4, { valueType: "i64", mutable: false }]
    ])
    // v128.const = 0xfd 0x0c + 16 bytes + end
    const x = m.globals[0]!
    expect(x.initSize).toBe(2 + 16 + 1)
    expect(bytes[x.initOffset]).toBe(0xfd)
    expect(bytes[x.initOffset + x.initSize - 1]).toBe(0x0b)
    expect(functionType(m, "h")).toEqual({ params: ["v128", "funcref", "externref"], results: ["i32", "i64"] })
    expect(functionType(m, "f")).toEqual({ params: ["i32", "i64"], results: ["f32"] })
    expect(functionType(m, "mem")).toBeUndefined()
    expect(functionType(m, "nope")).toBeUndefined()
  })

  it("reads memory64 limits (on request: Node 20 cannot run them, so they are unsupported by default)", async () => {
    const bytes = await wat(`(module (memory $m i64 1 2) (data (i64.const 0) "abc"))`)
    const r = readModule(bytes, { memory64: true })
    expect(r.ok && r.value.memories).toEqual([{ minPages: 1, maxPages: 2, shared: false, memory64: true }])
    const refused = readModule(bytes)
    expect(refused.ok ? "ok" : [refused.error.kind, refused.error.feature]).toEqual(["unsupported", "memory64"])
  })

  it("reads a defined memory export, start, data count", async () => {
    const bytes = await wat(`
      (module
        (memory $m 2 65536)
        (export "m" (memory $m))
        (func $s (data.drop 1))
        (start $s)
        (data (i32.const 0) "abc")
        (data "passive"))`)
    expect(WebAssembly.validate(bytes)).toBe(true)
    const m = ok(bytes)
    expect(m.memories).toEqual([{ minPages: 2, maxPages: 65536, shared: false, memory64: false }])
    expect(m.exports).toEqual([
      { name: "m", index: 0, type: { kind: "memory", minPages: 2, maxPages: 65536, shared: false, memory64: false } }
    ])
    expect(m.start).toBe(0)
    expect(m.dataCount).toBe(2)
    expect(m.sections.map((s) => s.id)).toEqual([1, 3, 5, 7, 8, 12, 10, 11])
  })

  it("custom sections: append then read back", async () => {
    const bytes = await wat(`(module (func (export "f")))`)
    const appended = appendCustomSection(bytes, "sig", new Uint8Array([1, 2, 3]))
    if (!appended.ok) throw appended.error
    const sections = customSections(appended.value)
    if (!sections.ok) throw sections.error
    expect(sections.value.map((s) => s.name)).toEqual(["sig"])
    const s = sections.value[0]!
    expect(Array.from(appended.value.subarray(s.dataOffset, s.dataOffset + s.dataLength))).toEqual([1, 2, 3])
    expect(ok(appended.value).customSections).toEqual(sections.value)
  })
})
