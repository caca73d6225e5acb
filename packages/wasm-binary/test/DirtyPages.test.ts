/**
 * The dirty-page write barrier, tested on hand-written modules against the
 * unrewritten originals: every store kind sets the bit of its page (memarg
 * offsets included), page-crossing stores are covered by the consumer's mask,
 * bulk writes set the bits of the pages they write (every bit from 64
 * pages on), atomic writes every bit, results and memory are the
 * original's, every page that changed is marked (a differential run of random
 * stores), and the composition with fuel costs no fuel.
 */
import { describe, expect, it } from "@effect/vitest"
import { referenceModules } from "@agent-runtime/reference-modules"
import {
  DIRTY_PAGES_EXPORT,
  dirtyPageMask,
  FUEL_EXPORT,
  instrumentDirtyPages,
  instrumentFuel,
  readModule,
  rewriteModule
} from "../src/index.js"
import { instantiateMetered } from "./helpers/FuelCounter.js"
import { AGENTS, FEATURES, featureModule, readAgentFixture } from "./helpers/OpcodeModules.js"
import { wat } from "./helpers/Wat.js"

const PAGE = 65_536

const barred = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => {
  const r = instrumentDirtyPages(bytes)
  if (!r.ok) throw r.error
  return r.value
}

interface Pair {
  readonly original: WebAssembly.Exports
  readonly rewritten: WebAssembly.Exports
}

const pair = async (text: string): Promise<Pair> => {
  const bytes = await wat(text)
  return {
    original: new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports,
    rewritten: new WebAssembly.Instance(new WebAssembly.Module(barred(bytes))).exports
  }
}

const bitmapOf = (exports: WebAssembly.Exports): WebAssembly.Global => exports[DIRTY_PAGES_EXPORT] as WebAssembly.Global

/** Calls `fn(...args)` on both instances (clearing the bitmap first); returns the bitmap after the call. */
const callBoth = (p: Pair, fn: string, ...args: Array<number | bigint>): bigint => {
  const bitmap = bitmapOf(p.rewritten)
  bitmap.value = 0n
  const outcome = (exports: WebAssembly.Exports): unknown => {
    try {
      return (exports[fn] as (...a: Array<unknown>) => unknown)(...args)
    } catch (e) {
      return `trap: ${(e as Error).message}`
    }
  }
  expect(outcome(p.rewritten)).toEqual(outcome(p.original))
  const a = new Uint8Array((p.original["memory"] as WebAssembly.Memory).buffer)
  const b = new Uint8Array((p.rewritten["memory"] as WebAssembly.Memory).buffer)
  expect(Buffer.compare(a, b)).toBe(0)
  return bitmap.value as bigint
}

const bit = (page: number): bigint => BigInt.asIntN(64, 1n << BigInt(page % 64))

const STORES = `
(module
  (memory (export "memory") 70)
  (func (export "i32.store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "i64.store") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "f32.store") (param i32 f32) (f32.store (local.get 0) (local.get 1)))
  (func (export "f64.store") (param i32 f64) (f64.store (local.get 0) (local.get 1)))
  (func (export "i32.store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "i32.store16") (param i32 i32) (i32.store16 (local.get 0) (local.get 1)))
  (func (export "i64.store8") (param i32 i64) (i64.store8 (local.get 0) (local.get 1)))
  (func (export "i64.store16") (param i32 i64) (i64.store16 (local.get 0) (local.get 1)))
  (func (export "i64.store32") (param i32 i64) (i64.store32 (local.get 0) (local.get 1)))
  (func (export "v128.store") (param i32 i64)
    (v128.store (local.get 0) (i64x2.splat (local.get 1))))
  (func (export "v128.store64_lane") (param i32 i64)
    (v128.store64_lane 1 (local.get 0) (i64x2.splat (local.get 1))))
  (func (export "offset") (param i32 i32) (i32.store offset=65536 (local.get 0) (local.get 1)))
  (func (export "big-offset") (param i32 i32) (i32.store8 offset=4294967295 (local.get 0) (local.get 1)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (data $d "hello")
  (func (export "init") (param i32) (memory.init $d (local.get 0) (i32.const 0) (i32.const 5)))
  (func (export "atomic") (param i32 i32) (i32.atomic.store (local.get 0) (local.get 1)))
  (func (export "rmw") (param i32 i64) (result i64) (i64.atomic.rmw.add (local.get 0) (local.get 1)))
  (func (export "load") (param i32) (result i64) (i64.load (local.get 0)))
  ;; stores in a loop with the value computed on the stack, a local of the function's own, and a result
  (func (export "loop") (param $from i32) (param $n i32) (result i32) (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (i32.add (local.get $from) (i32.mul (local.get $i) (i32.const 4096))) (i32.add (local.get $i) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  ;; a store in dead code (polymorphic stack) must still validate
  (func (export "dead") (param i32) (return) (i32.store (local.get 0) (i32.const 1)))
)`

describe("dirty-page barrier", () => {
  it("every store kind sets the bit of its page and stores what the original stores", async () => {
    const p = await pair(STORES)
    const cases: ReadonlyArray<readonly [string, number | bigint]> = [
      ["i32.store", -7],
      ["i64.store", -7n],
      ["f32.store", 1.5],
      ["f64.store", -2.25],
      ["i32.store8", 0x1ff],
      ["i32.store16", 0x1ffff],
      ["i64.store8", 0x1ffn],
      ["i64.store16", 0x1ffffn],
      ["i64.store32", 0x1ffffffffn],
      ["v128.store", 0x0102030405060708n],
      ["v128.store64_lane", 0x0a0b0c0d0e0f1011n]
    ]
    for (const [fn, value] of cases) {
      for (const page of [0, 1, 5, 63, 64, 69]) {
        expect(callBoth(p, fn, page * PAGE + 100, value)).toBe(bit(page))
      }
    }
  })

  it("adds the memarg offset (u32) to the address", async () => {
    const p = await pair(STORES)
    expect(callBoth(p, "offset", 3 * PAGE + 8, 9)).toBe(bit(4))
    expect(callBoth(p, "offset", 0, 9)).toBe(bit(1))
    // address + offset past 4 GiB: the store traps and writes nothing (the bit it sets is harmless)
    callBoth(p, "big-offset", 2, 9)
    // address + offset = 4 GiB − 1 + 0: out of bounds of a 70-page memory, traps in both
    callBoth(p, "big-offset", 0, 9)
  })

  it("a page-crossing store marks its first page; the consumer's mask covers the next one", async () => {
    const p = await pair(STORES)
    const bitmap = callBoth(p, "i64.store", 2 * PAGE - 3, 0x1122334455667788n)
    expect(bitmap).toBe(bit(2 - 1))
    const mask = dirtyPageMask(bitmap)
    // pages 1 and 2 are to be compared: bits 1 and 2 of the mask
    expect(mask.low & 0b110).toBe(0b110)
    expect((p.rewritten["load"] as (a: number) => bigint)(2 * PAGE - 3)).toBe(0x1122334455667788n)
    // bit 63 (page 63 or 127 …) spills into page 64 ≡ 0: the mask's bit 0
    const wrap = dirtyPageMask(bit(63))
    expect(wrap.low & 1).toBe(1)
    expect(wrap.high >>> 31).toBe(1)
  })

  it("bulk writes set the bits of the pages they write (all from 64 pages on); atomics set every bit", async () => {
    const p = await pair(STORES)
    expect(callBoth(p, "fill", PAGE, 0xab, 10)).toBe(bit(1))
    expect(callBoth(p, "copy", 7 * PAGE, PAGE, 10)).toBe(bit(7))
    expect(callBoth(p, "init", 9 * PAGE)).toBe(bit(9))
    expect(callBoth(p, "init", 10 * PAGE - 2)).toBe(bit(9) | bit(10)) // 5 bytes across a page boundary
    expect(callBoth(p, "fill", PAGE - 5, 1, 2 * PAGE)).toBe(bit(0) | bit(1) | bit(2))
    expect(callBoth(p, "copy", 3 * PAGE, 0, PAGE)).toBe(bit(3)) // exactly one page
    expect(callBoth(p, "copy", 3 * PAGE, 0, PAGE + 1)).toBe(bit(3) | bit(4))
    // pages 62 … 65: bits 62, 63, 0, 1 (mod 64)
    expect(callBoth(p, "fill", 62 * PAGE + 9, 2, 3 * PAGE)).toBe(bit(62) | bit(63) | bit(0) | bit(1))
    expect(callBoth(p, "fill", 63 * PAGE, 2, PAGE + 1)).toBe(bit(63) | bit(0))
    // 63 pages: 63 bits; 64 pages or more: all of them
    expect(callBoth(p, "fill", PAGE, 3, 63 * PAGE)).toBe(BigInt.asIntN(64, ((1n << 63n) - 1n) << 1n))
    expect(callBoth(p, "fill", 0, 3, 64 * PAGE)).toBe(-1n)
    expect(callBoth(p, "fill", 5 * PAGE + 1, 3, 64 * PAGE)).toBe(-1n)
    // nothing written: no bit, but for a zero length at address 0 (the sum wraps: every bit, harmless)
    expect(callBoth(p, "fill", 4 * PAGE, 7, 0)).toBe(0n)
    expect(callBoth(p, "fill", 4 * PAGE + 9, 7, 0)).toBe(bit(4))
    expect(callBoth(p, "fill", 0, 7, 0)).toBe(-1n)
    // out of bounds: traps in both, writes nothing
    callBoth(p, "fill", 69 * PAGE, 7, 2 * PAGE)
    callBoth(p, "copy", 0xffffff00, 0, 0x200)
    expect(callBoth(p, "atomic", 4 * PAGE, 3)).toBe(-1n)
    expect(callBoth(p, "rmw", 4 * PAGE, 3n)).toBe(-1n)
    // a read writes nothing
    expect(callBoth(p, "load", 4 * PAGE)).toBe(0n)
  })

  it("loops, the function's own locals and dead code keep working", async () => {
    const p = await pair(STORES)
    // 20 stores 4 KiB apart from page 3: pages 3 and 4
    expect(callBoth(p, "loop", 3 * PAGE, 20)).toBe(bit(3) | bit(4))
    expect(callBoth(p, "dead", 0)).toBe(0n)
  })

  it("every page that changed is marked (random stores, differential)", async () => {
    const p = await pair(STORES)
    const memory = (p.original["memory"] as WebAssembly.Memory).buffer
    let seed = 12345
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const kinds = [
      "i32.store",
      "i64.store",
      "i32.store16",
      "f64.store",
      "v128.store",
      "offset",
      "fill",
      "copy"
    ] as const
    for (let round = 0; round < 40; round++) {
      const before = new Uint8Array(memory).slice()
      // a store close to a page boundary half of the time
      const page = random(69)
      const address = random(2) === 0 ? page * PAGE + PAGE - 1 - random(16) : page * PAGE + random(PAGE - 16)
      const fn = kinds[random(kinds.length)]!
      const value =
        fn === "i32.store" || fn === "i32.store16" || fn === "offset"
          ? random(1 << 30) + 1
          : fn === "f64.store"
            ? random(1000) + 0.5
            : BigInt(random(1 << 30) + 1)
      if (fn === "offset" && address + PAGE + 4 > 70 * PAGE) continue
      const length = random(3) === 0 ? random(70 * PAGE - address) : random(3 * PAGE)
      const mask = dirtyPageMask(
        fn === "fill"
          ? callBoth(p, fn, address, 1 + random(255), Math.min(length, 70 * PAGE - address))
          : fn === "copy"
            ? callBoth(p, fn, address, random(PAGE), Math.min(length, 69 * PAGE - address))
            : callBoth(p, fn, address, value)
      )
      const after = new Uint8Array(memory)
      for (let q = 0; q < 70; q++) {
        const changed =
          Buffer.compare(before.subarray(q * PAGE, (q + 1) * PAGE), after.subarray(q * PAGE, (q + 1) * PAGE)) !== 0
        const marked = ((q % 64 < 32 ? mask.low >>> (q % 64) : mask.high >>> ((q % 64) - 32)) & 1) === 1
        if (changed) expect(marked).toBe(true)
      }
    }
  })

  it("publishes the function's bits before every exit, call and throw (a trap may leave them unpublished)", async () => {
    const p = await pair(`(module
      (memory (export "memory") 70)
      (tag $e)
      (func $inner (param i32) (i32.store (local.get 0) (i32.const 1)))
      (func (export "call-after") (param i32 i32) (i32.store (local.get 0) (i32.const 1)) (call $inner (local.get 1)))
      (func (export "br-out") (param i32) (block (i32.store (local.get 0) (i32.const 2)) (br 1)))
      (func (export "br_if-out") (param i32) (i32.store (local.get 0) (i32.const 2)) (br_if 0 (i32.const 1)) (unreachable))
      (func (export "br_table-out") (param i32)
        (block (i32.store (local.get 0) (i32.const 2)) (br_table 0 1 (i32.const 1))) (unreachable))
      (func (export "ret") (param i32) (result i32) (i32.store (local.get 0) (i32.const 3)) (return (i32.const 7)))
      (func (export "tail") (param i32 i32) (i32.store (local.get 0) (i32.const 3)) (return_call $inner (local.get 1)))
      (func $thrower (param i32) (i32.store (local.get 0) (i32.const 4)) (throw $e))
      (func (export "caught") (param i32) (try (do (call $thrower (local.get 0))) (catch $e)))
      (func (export "loop-stores") (param i32) (local $i i32)
        (loop $l
          (i32.store (i32.add (local.get 0) (i32.mul (local.get $i) (i32.const 65536))) (local.get $i))
          (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 3)))))
      (func (export "stored-then-trap") (param i32) (i32.store (local.get 0) (i32.const 5)) (unreachable)))`)
    expect(callBoth(p, "call-after", 3 * PAGE, 9 * PAGE)).toBe(bit(3) | bit(9))
    expect(callBoth(p, "br-out", 4 * PAGE)).toBe(bit(4))
    expect(callBoth(p, "br_if-out", 5 * PAGE)).toBe(bit(5))
    expect(callBoth(p, "br_table-out", 6 * PAGE)).toBe(bit(6))
    expect(callBoth(p, "ret", 7 * PAGE)).toBe(bit(7))
    expect(callBoth(p, "tail", 8 * PAGE, 10 * PAGE)).toBe(bit(8) | bit(10))
    expect(callBoth(p, "caught", 11 * PAGE)).toBe(bit(11))
    expect(callBoth(p, "loop-stores", 20 * PAGE)).toBe(bit(20) | bit(21) | bit(22))
    // the trap unwinds the frame before its exit: its bit is not published (the engine then compares everything)
    expect(callBoth(p, "stored-then-trap", 12 * PAGE)).toBe(0n)
  })

  it("adds one global and its export; leaves functions without writes byte for byte", async () => {
    const bytes = await wat(`(module
      (global $g (mut i32) (i32.const 0))
      (memory 1)
      (func (export "pure") (param i32) (result i32) (i32.add (local.get 0) (global.get $g)))
      (func (export "store") (param i32) (i32.store (local.get 0) (i32.const 1))))`)
    const out = barred(bytes)
    const info = readModule(out)
    if (!info.ok) throw info.error
    expect(info.value.globals.map((g) => g.type)).toEqual([
      { valueType: "i32", mutable: true },
      { valueType: "i64", mutable: true }
    ])
    expect(info.value.exports.find((e) => e.name === DIRTY_PAGES_EXPORT)?.index).toBe(1)
    // the "pure" body (no writes) appears unchanged in the output: size 7, no locals, its 6 instruction bytes
    const pure = Buffer.from([0x07, 0x00, 0x20, 0x00, 0x23, 0x00, 0x6a, 0x0b])
    expect(Buffer.from(bytes).includes(pure)).toBe(true)
    expect(Buffer.from(out).includes(pure)).toBe(true)
  })

  it("returns a module without memory unchanged", async () => {
    const bytes = await wat(`(module (func (export "f") (result i32) (i32.const 1)))`)
    expect(Buffer.compare(barred(bytes), bytes)).toBe(0)
  })

  it("refuses hidden exports, memory64 and modules that do not validate", async () => {
    const hidden = await wat(`(module (memory 1) (global (export "agent-runtime:x") (mut i64) (i64.const 0)))`)
    const r1 = instrumentDirtyPages(hidden)
    expect(r1.ok).toBe(false)
    const m64 = await wat(`(module (memory i64 1))`)
    expect(instrumentDirtyPages(m64).ok).toBe(false)
    const invalid = await wat(`(module (memory 1) (func (i32.store (i64.const 0) (i32.const 1))))`).catch(
      () => undefined
    )
    if (invalid !== undefined) expect(instrumentDirtyPages(invalid).ok).toBe(false)
  })

  it("after fuel metering: costs no fuel, the bitmap is not agent state", async () => {
    const bytes = await wat(STORES)
    const fuelOnly = instrumentFuel(bytes)
    const both = rewriteModule(bytes, { fuel: true, dirtyPages: true, exportState: true, maxMemoryPages: 100 })
    if (!fuelOnly.ok) throw fuelOnly.error
    if (!both.ok) throw both.error
    expect(both.value.dirtyPagesExport).toBe(DIRTY_PAGES_EXPORT)
    expect(both.value.addedExports).toContain(DIRTY_PAGES_EXPORT)
    expect(both.value.state?.globals.map((g) => g.name)).not.toContain(DIRTY_PAGES_EXPORT)
    const run = (module: Uint8Array<ArrayBuffer>) => {
      const e = instantiateMetered(module).exports
      const fuel = e[FUEL_EXPORT] as WebAssembly.Global
      fuel.value = 1_000_000n
      ;(e["loop"] as (a: number, n: number) => number)(PAGE, 50)
      return { fuel: fuel.value as bigint, bitmap: (e[DIRTY_PAGES_EXPORT] as WebAssembly.Global | undefined)?.value }
    }
    const a = run(fuelOnly.value)
    const b = run(both.value.bytes)
    expect(b.fuel).toBe(a.fuel)
    expect(a.bitmap).toBeUndefined()
    expect(b.bitmap).toBe(bit(1) | bit(2) | bit(3) | bit(4))
  })
})

describe("barred modules validate (reference modules, agents, every opcode of every feature)", () => {
  const check = (bytes: Uint8Array<ArrayBuffer>) => {
    const r = rewriteModule(bytes, { dirtyPages: true, exportState: true, fuel: true, maxMemoryPages: 65_536 })
    if (!r.ok) throw r.error
    expect(WebAssembly.validate(r.value.bytes)).toBe(true)
    const alone = barred(bytes)
    expect(WebAssembly.validate(alone)).toBe(true)
  }
  for (const ref of referenceModules) it(`reference module ${ref.name}`, () => check(ref.read()))
  for (const name of AGENTS) it(`agent ${name}`, () => check(readAgentFixture(name)))
  for (const feature of FEATURES) {
    it(`every ${feature.name} opcode`, async () => check((await featureModule(feature)).bytes))
  }
})
