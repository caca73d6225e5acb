/**
 * In real Chromium (V8 as the page runs it): growing an unshared memory —
 * by the host, by the guest, inside a nested host call — detaches its
 * previous buffer (`byteLength` 0), which engine-kit's calls rely on to keep
 * the last buffer instead of reading the `buffer` accessor
 * (`engine-kit/src/internal/memorySize.ts`); and a prepared call's reported
 * memory size is what `memory.buffer.byteLength` reads after it. The same
 * checks run on Node in engine-kit's `test/internal/memorySize.test.ts`.
 */
import type { CallSlot } from "@agent-runtime/domain"
import { Instance } from "@agent-runtime/engine-kit"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"

const PAGE = 65_536

const GROWER = `
(module
  (import "host" "grow" (func $hostGrow (param i32)))
  (import "host" "reenter" (func $reenter (param i32)))
  (memory (export "memory") 1 64)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "hostGrow") (param i32) (result i32) (call $hostGrow (local.get 0)) (memory.size))
  (func (export "nested") (param i32) (result i32) (call $reenter (local.get 0)) (memory.size))
  (func (export "size") (result i32) (memory.size))
)`

const growerModule = Effect.promise(async () => new WebAssembly.Module((await wat(GROWER)) as Uint8Array<ArrayBuffer>))

describe("Chromium detaches an unshared memory's buffer on growth", () => {
  it.effect("by the host, by the guest, inside a nested host call", () =>
    Effect.gen(function* () {
      const module = yield* growerModule
      const target: { memory?: WebAssembly.Memory; grow?: (pages: number) => number } = {}
      const instance = new WebAssembly.Instance(module, {
        host: { grow: (n: number) => void target.memory!.grow(n), reenter: (n: number) => void target.grow!(n) }
      })
      const exported = instance.exports as Record<string, (n?: number) => number>
      const memory = instance.exports["memory"] as WebAssembly.Memory
      target.memory = memory
      target.grow = exported["grow"]!
      const growths: ReadonlyArray<readonly [string, () => void]> = [
        ["host Memory.grow", () => void memory.grow(1)],
        ["guest memory.grow", () => void exported["grow"]!(1)],
        ["host grow inside a guest call", () => void exported["hostGrow"]!(1)],
        ["guest grow inside a host call inside a guest call", () => void exported["nested"]!(1)]
      ]
      for (const [what, grow] of growths) {
        const before = memory.buffer
        const size = before.byteLength
        grow()
        expect(before.byteLength, what).toBe(0)
        expect(memory.buffer.byteLength, what).toBe(size + PAGE)
      }
    })
  )

  it.effect("a prepared call reports the size memory.buffer.byteLength reads after it", () =>
    Effect.gen(function* () {
      const module = yield* growerModule
      const target: { memory?: WebAssembly.Memory; grow?: (pages: number) => number } = {}
      const made = Instance.instantiate(module, {
        host: { grow: (n: number) => void target.memory!.grow(n), reenter: (n: number) => void target.grow!(n) }
      })
      if (made instanceof Error) throw made
      const memory = made.memory!
      target.memory = memory
      target.grow = made.exports["grow"] as (pages: number) => number
      const slot: CallSlot = { result: undefined, memoryBytes: -1, fuelRemaining: undefined }
      const script: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
        ["size", []],
        ["grow", [1]],
        ["size", []],
        ["hostGrow", [2]],
        ["size", []],
        ["nested", [1]],
        ["size", []],
        ["grow", [100]], // refused: -1, no growth
        ["size", []]
      ]
      for (let round = 0; round < 3; round++) {
        for (const [fn, args] of script) {
          expect(made.prepareDirect(fn)!(args, undefined, slot)).toBeUndefined()
          expect(slot.memoryBytes, `${fn}(${args.join()})`).toBe(memory.buffer.byteLength)
        }
        memory.grow(1) // between calls, by the host
        expect(made.prepareDirect("size")!([], undefined, slot)).toBeUndefined()
        expect(slot.memoryBytes).toBe(memory.buffer.byteLength)
      }
      expect(memory.buffer.byteLength).toBe(16 * PAGE)
    })
  )
})
