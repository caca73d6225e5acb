/**
 * Fuzzing: thousands of mutations (bit flips, random bytes, truncations,
 * deletions, duplications, insertions) of real modules, with a fixed seed.
 * The reader must never throw, never hang, report offsets inside the input,
 * and accept every mutant V8 accepts (differential oracle: V8 is the
 * stricter validator, as it also validates function bodies).
 */
import { describe, expect, it } from "@effect/vitest"
import { referenceModules } from "@agent-runtime/reference-modules"
import { appendCustomSection, customSections, readModule, removeCustomSections, WasmBinaryError } from "../src/index.js"
import { mutate, prng } from "./helpers/Mutate.js"
import { wat } from "./helpers/Wat.js"

const SEED = 0x5eed_2025

interface Target {
  readonly name: string
  readonly bytes: Uint8Array<ArrayBuffer>
  readonly iterations: number
}

const checkNeverThrows = (bytes: Uint8Array<ArrayBuffer>, context: string): boolean => {
  let result: ReturnType<typeof readModule>
  try {
    result = readModule(bytes)
  } catch (e) {
    throw new Error(`readModule threw on ${context}: ${String(e)}`)
  }
  if (!result.ok) {
    if (!(result.error instanceof WasmBinaryError)) throw new Error(`not a WasmBinaryError on ${context}`)
    if (result.error.offset < 0 || result.error.offset > bytes.length) {
      throw new Error(
        `offset ${result.error.offset} outside [0, ${bytes.length}] on ${context}: ${result.error.message}`
      )
    }
    if (result.error.reason.startsWith("internal error")) throw new Error(`${result.error.message} on ${context}`)
  }
  for (const r of [
    customSections(bytes),
    removeCustomSections(bytes, "name"),
    appendCustomSection(bytes, "x", bytes.subarray(0, 3))
  ]) {
    if (!r.ok && (r.error.offset < 0 || r.error.offset > bytes.length))
      throw new Error(`custom helper offset out of range on ${context}`)
  }
  return result.ok
}

describe("fuzz", () => {
  const targets: Array<Target> = referenceModules.map((m) => {
    const bytes = m.read()
    return { name: m.name, bytes, iterations: bytes.length < 100_000 ? 3_000 : 400 }
  })

  it("hand-written module with every section kind", async () => {
    const bytes = await wat(`
      (module
        (type $v (func))
        (import "env" "f" (func $f (param i32) (result i32)))
        (import "env" "g" (global $g i32))
        (import "env" "t" (table 1 funcref))
        (memory 1 2)
        (tag $e (param i32))
        (global $m (mut i64) (i64.const -5))
        (global $r funcref (ref.func $h))
        (func $h (type $v))
        (func $k (param i32 i64) (result f64) (local f32 v128) (f64.const 1))
        (export "h" (func $h)) (export "m" (global $m)) (export "e" (tag $e))
        (start $h)
        (elem (i32.const 0) func $h)
        (elem funcref (ref.func $k))
        (data (global.get $g) "hello")
        (data "world"))`)
    targets.push({ name: "hand-written", bytes, iterations: 5_000 })
    expect(WebAssembly.validate(bytes)).toBe(true)
  })

  it("mutants never throw, errors point inside the input, V8-valid mutants read OK", () => {
    const rng = prng(SEED)
    const deadline = Date.now() + 20_000
    let total = 0
    let accepted = 0
    let v8Accepted = 0
    for (const target of targets) {
      expect(readModule(target.bytes).ok).toBe(true)
      for (let i = 0; i < target.iterations && Date.now() < deadline; i++) {
        const { bytes, what } = mutate(target.bytes, rng)
        const context = `${target.name}, mutation #${i} (${what})`
        const ours = checkNeverThrows(bytes, context)
        total++
        if (ours) accepted++
        // The oracle is cheap enough on small modules; sample it on large ones.
        if (target.bytes.length < 100_000 || i % 10 === 0) {
          if (WebAssembly.validate(bytes)) {
            v8Accepted++
            if (!ours) {
              const r = readModule(bytes)
              throw new Error(`V8 accepts but readModule rejects ${context}: ${r.ok ? "" : r.error.message}`)
            }
          }
        }
      }
    }
    expect(total).toBeGreaterThan(5_000)
    expect(accepted).toBeGreaterThan(0)
    expect(v8Accepted).toBeGreaterThan(0)
  })

  it('every truncation of a small module fails with "unexpected end"-like errors (or, at a section boundary, agrees with V8)', () => {
    const bytes = referenceModules[0]!.read()
    for (let n = 0; n < bytes.length; n++) {
      const prefix = bytes.subarray(0, n)
      const r = readModule(prefix)
      expect(r.ok).toBe(WebAssembly.validate(prefix))
      if (!r.ok) {
        expect(r.error.offset).toBeLessThanOrEqual(n)
        expect([
          "unexpected end",
          "section size mismatch",
          "length out of bounds",
          "function and code section have inconsistent lengths",
          "data count and data section have inconsistent lengths"
        ]).toContain(r.error.reason)
      }
    }
  })
})
