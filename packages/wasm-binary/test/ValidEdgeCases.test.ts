/**
 * Valid modules on the edges of the binary format: whatever V8 (Node 20)
 * accepts must be accepted here too.
 */
import { describe, expect, it } from "@effect/vitest"
import { readModule, type ModuleInfo } from "../src/index.js"
import {
  bytes,
  codeSection,
  emptyBody,
  functionSection,
  functype,
  module,
  name,
  PREAMBLE,
  section,
  T,
  typeSection,
  u32,
  vec
} from "./helpers/ModuleBuilder.js"
import { wat } from "./helpers/Wat.js"

const ok = (bytes: Uint8Array): ModuleInfo => {
  const r = readModule(bytes)
  if (!r.ok) throw new Error(`expected ok, got ${r.error.message}`)
  return r.value
}

const rep = (b: number, n: number): Array<number> => Array.from({ length: n }, () => b)
const globalI32 = (...init: ReadonlyArray<number>) => section(6, vec(bytes(T.i32, 0x00, init, 0x0b)))
const globalI64 = (...init: ReadonlyArray<number>) => section(6, vec(bytes(T.i64, 0x00, init, 0x0b)))

const cases: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array<ArrayBuffer> }> = [
  { name: "empty module", bytes: module() },
  {
    name: "padded section size and count (5-byte u32)",
    bytes: module(1, 0x85, 0x80, 0x80, 0x80, 0x00, 0x80, 0x80, 0x80, 0x80, 0x00)
  },
  { name: "u32 count 0 in 5 bytes with 5th byte 0x00", bytes: module(section(1, rep(0x80, 4), 0x00)) },
  { name: "s32 -1 in 5 bytes", bytes: module(globalI32(0x41, ...rep(0xff, 4), 0x7f)) },
  { name: "s32 min in 5 bytes", bytes: module(globalI32(0x41, ...rep(0x80, 4), 0x78)) },
  { name: "s32 max in 5 bytes", bytes: module(globalI32(0x41, ...rep(0xff, 4), 0x07)) },
  { name: "s64 min in 10 bytes", bytes: module(globalI64(0x42, ...rep(0x80, 9), 0x7f)) },
  { name: "s64 -1 in 10 bytes", bytes: module(globalI64(0x42, ...rep(0xff, 9), 0x7f)) },
  { name: "s64 0 in 10 bytes", bytes: module(globalI64(0x42, ...rep(0x80, 9), 0x00)) },
  {
    name: "custom sections everywhere, empty name",
    bytes: module(
      section(0, name("")),
      section(1, vec(functype([], []))),
      section(0, name("between"), 1, 2, 3),
      functionSection(0),
      section(0, name("λ ünïcödé"), 0),
      codeSection(emptyBody),
      section(0, name("end"))
    )
  },
  {
    name: "50000 locals",
    bytes: module(
      typeSection(functype([], [])),
      functionSection(0),
      codeSection(bytes(2, u32(40_000), T.i32, u32(10_000), T.f64, 0x0b))
    )
  },
  {
    name: "49999 locals + 1 parameter",
    bytes: module(
      typeSection(functype([T.i32], [])),
      functionSection(0),
      codeSection(bytes(1, u32(49_999), T.i32, 0x0b))
    )
  },
  { name: "memory of 65536 pages", bytes: module(section(5, vec(bytes(0x01, u32(65_536), u32(65_536))))) },
  { name: "shared memory with maximum", bytes: module(section(5, vec(bytes(0x03, 1, 2)))) },
  { name: "data count 0, no data section", bytes: module(section(12, u32(0))) },
  { name: "data count with empty data section", bytes: module(section(12, u32(0)), section(11, vec())) }
]

describe("valid edge cases (V8 accepts, so must we)", () => {
  for (const c of cases) {
    it(c.name, () => {
      expect(WebAssembly.validate(c.bytes)).toBe(true)
      ok(c.bytes)
    })
  }

  it("all eight element segment forms", async () => {
    const bytes = await wat(`
      (module
        (type $v (func))
        (table $t0 10 funcref)
        (table $t1 10 externref)
        (func $f)
        (func $g)
        (elem (i32.const 0) func $f $g)                       ;; 0
        (elem func $f)                                         ;; 1 passive
        (elem (table $t0) (i32.const 2) func $g)               ;; 2
        (elem declare func $g)                                 ;; 3
        (elem (i32.const 3) funcref (ref.func $f) (ref.null func)) ;; 4
        (elem funcref (ref.func $g))                           ;; 5 passive
        (elem (table $t1) (i32.const 0) externref (ref.null extern)) ;; 6
        (elem declare funcref (ref.func $f))                   ;; 7
      )`)
    expect(WebAssembly.validate(bytes)).toBe(true)
    const m = ok(bytes)
    const elements = m.sections.find((s) => s.id === 9)!
    // the segment count, then each segment starts with its flags (0..7, in order here)
    expect(bytes[elements.payloadOffset]).toBe(8)
    expect(m.functions).toHaveLength(2)
  })

  it("tail calls, legacy exception handling, SIMD, threads, bulk memory, sat-float, sign-ext, multi-value", async () => {
    const bytes = await wat(`
      (module
        (import "env" "mem" (memory 1 2 shared))
        (global $base (import "env" "base") i32)
        (tag $e (param i32))
        (func $a (param i32) (result i32 i64) (local v128 f32)
          (v128.const i32x4 1 2 3 4) (local.set 1)
          (i32x4.extract_lane 0 (local.get 1)) drop
          (i32.atomic.rmw.add (i32.const 0) (i32.const 1)) drop
          (i32.trunc_sat_f32_s (f32.const 1.5)) drop
          (i32.extend8_s (local.get 0)) drop
          (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))
          (try (do (throw $e (i32.const 1))) (catch $e drop))
          (local.get 0) (i64.const 1))
        (func $b (param i32) (result i32 i64) (return_call $a (local.get 0)))
        (data (global.get $base) "x")
        (export "b" (func $b)))`)
    expect(WebAssembly.validate(bytes)).toBe(true)
    const m = ok(bytes)
    expect(m.exports[0]?.type).toEqual({ kind: "function", params: ["i32"], results: ["i32", "i64"] })
    expect(m.tags).toEqual([{ params: ["i32"] }])
  })

  it("memory64 and extended constant expressions (not in Node 20's V8 by default)", async () => {
    const bytes = await wat(`
      (module
        (memory i64 1 65536)
        (global $g i32 (i32.const 1))
        (global $h i32 (i32.add (global.get $g) (i32.mul (i32.const 2) (i32.const 3))))
        (global $k i64 (i64.sub (i64.const 1) (i64.const 2)))
        (data (i64.const 0) "x"))`)
    const refused = readModule(bytes)
    expect(refused.ok ? "ok" : [refused.error.kind, refused.error.feature]).toEqual(["unsupported", "memory64"])
    const decoded = readModule(bytes, { memory64: true, extendedConst: true })
    if (!decoded.ok) throw new Error(decoded.error.message)
    const m = decoded.value
    expect(m.memories).toEqual([{ minPages: 1, maxPages: 65_536, shared: false, memory64: true }])
    expect(m.globals.map((g) => g.initSize)).toEqual([3, 9, 6])
  })

  it("module bytes inside a larger buffer (a Uint8Array view with a byteOffset)", () => {
    const inner = module(
      typeSection(functype([], [])),
      functionSection(0),
      section(7, vec(bytes(name("f"), 0, 0))),
      codeSection(emptyBody)
    )
    const outer = new Uint8Array(inner.length + 20)
    outer.set(inner, 10)
    const view = outer.subarray(10, 10 + inner.length)
    expect(ok(view).exports.map((e) => e.name)).toEqual(["f"])
    expect(PREAMBLE.length).toBe(8)
  })
})
