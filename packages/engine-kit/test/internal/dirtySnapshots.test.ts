/**
 * Snapshots through the dirty-page write barrier (`InstanceConfig.dirtyPages`,
 * `dirty.ts` `pageSnapshots`): over random workloads — stores that spill
 * into the next page, pages 64 apart (the bitmap's aliasing), fills and
 * copies, growth, stores that zero a page again, host writes, restores and
 * calls that trap after storing — every snapshot is byte for byte the one
 * a full scan of the same instance's twin takes (same module, no barrier
 * reading), and pages no store reached since the previous snapshot are
 * that snapshot's own objects.
 */
import { wat } from "@agent-runtime/test-support"
import { DIRTY_PAGES_EXPORT, rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { EngineState } from "@agent-runtime/domain"
import { instantiate, type LiveInstance } from "../../src/internal/core.js"
import { changedPages, nonZeroPages } from "../../src/internal/dirty.js"

const PAGE = 65_536

const MODULE = `
(module
  (memory (export "memory") 2 80)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 65540) "from a data segment")
  (func (export "noop") (global.set $calls (i32.add (global.get $calls) (i32.const 1))))
  (func (export "store64") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "storeThenTrap") (param i32 i64) (i64.store (local.get 0) (local.get 1)) (unreachable))
)`

/** A seeded PRNG (xorshift32): the same workload every run. */
const prng = (seed: number) => {
  let x = seed >>> 0 || 1
  return (n: number): number => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
}

const live = <E extends Error>(r: LiveInstance<E> | Error): LiveInstance<E> => {
  if (r instanceof Error) throw r
  return r
}

const state = (s: EngineState | Error): EngineState => {
  if (s instanceof Error) throw s
  return s
}

/** The twins: one reading the barrier for its snapshots, one scanning every page (the same rewritten module). */
const twins = Effect.promise(async () => {
  const rewritten = rewriteModule(await wat(MODULE), { exportState: true, dirtyPages: true })
  if (!rewritten.ok) throw rewritten.error
  expect(rewritten.value.addedExports).toContain(DIRTY_PAGES_EXPORT)
  const module = new WebAssembly.Module(rewritten.value.bytes as Uint8Array<ArrayBuffer>)
  return {
    tracked: live(instantiate(module, {}, { dirtyPages: true })),
    full: live(instantiate(module, {}))
  }
})

const comparable = (s: EngineState) => ({
  memoryBytes: s.memoryBytes,
  globals: s.globals,
  pages: s.pages.map((p) => [p.index, Buffer.from(p.data).toString("base64")])
})

describe("snapshots through the write barrier", () => {
  it.effect("random workloads: every snapshot equals a full scan; untouched pages are the previous objects", () =>
    Effect.gen(function* () {
      for (const seed of [1, 7, 42, 1234]) {
        const { tracked, full } = yield* twins
        const next = prng(seed)
        let previous = state(tracked.snapshot())
        expect(comparable(previous)).toEqual(comparable(state(full.snapshot())))
        let saved: EngineState | undefined
        const reached = new Set<number>() // pages written through the guest's own stores since the last snapshot
        let outside = false // since then: a write the barrier cannot see, or a trap (the next snapshot scans all)
        for (let step = 0; step < 120; step++) {
          const pages = tracked.memoryBytes() / PAGE
          // an address near a page boundary half the time: a store that spills into the next page
          const page = next(pages)
          const at = next(2) === 0 ? page * PAGE + next(PAGE - 8) : Math.max(0, (page + 1) * PAGE - 1 - next(8))
          const both = (fn: string, args: ReadonlyArray<number | bigint>) => {
            const a = tracked.call(fn, args)
            const b = full.call(fn, args)
            expect(a instanceof Error).toBe(b instanceof Error)
            return a
          }
          switch (next(10)) {
            case 0:
              both("noop", [])
              break
            case 1: {
              both("store64", [Math.min(at, pages * PAGE - 8), BigInt(next(1 << 30)) * 3n + 1n])
              reached.add(page).add(page + 1)
              break
            }
            case 2: {
              // zero a page's first word: a page holding only it becomes zero again
              both("store64", [page * PAGE, 0n])
              reached.add(page)
              break
            }
            case 3: {
              const length = next(Math.min(3, pages) * PAGE)
              const from = Math.min(at, pages * PAGE - length)
              both("fill", [from, next(2) === 0 ? 0 : next(256), length])
              for (let p = 0; p < pages; p++) reached.add(p) // bulk writes mark every page
              break
            }
            case 4: {
              const length = next(PAGE)
              both("copy", [Math.min(at, pages * PAGE - length), next(pages * PAGE - length), length])
              for (let p = 0; p < pages; p++) reached.add(p)
              break
            }
            case 5: {
              if (pages < 75) both("grow", [1 + next(40)])
              break
            }
            case 6: {
              const bytes = new Uint8Array(1 + next(100)).fill(1 + next(255))
              const offset = Math.min(at, pages * PAGE - bytes.length)
              expect(tracked.write(offset, bytes)).toBeUndefined()
              expect(full.write(offset, bytes)).toBeUndefined()
              outside = true
              break
            }
            case 7: {
              both("storeThenTrap", [Math.min(at, pages * PAGE - 8), -1n])
              outside = true
              break
            }
            case 8: {
              // pages 64 apart share a bit: a store to one compares both
              const target = (page + 64) % pages
              both("store8", [target * PAGE + next(PAGE), 1 + next(255)])
              reached.add(target)
              break
            }
            case 9: {
              if (saved !== undefined && next(3) === 0) {
                expect(tracked.restore(saved)).toBeUndefined()
                expect(full.restore(saved)).toBeUndefined()
                outside = true
              } else saved = state(full.snapshot())
              break
            }
          }
          if (next(3) === 0) continue // several steps between snapshots: the bits add up
          const now = state(tracked.snapshot())
          expect(comparable(now)).toEqual(comparable(state(full.snapshot())))
          if (!outside && reached.size === 0 && now.memoryBytes === previous.memoryBytes) {
            // nothing stored since (noops, snapshots of the twin): the very same pages
            expect(now.pages).toBe(previous.pages)
          } else if (!outside) {
            // pages no store reached (nor the page before one) are the previous snapshot's objects
            const before = new Map(previous.pages.map((p) => [p.index, p]))
            for (const p of now.pages) {
              const hit = [...reached].some((r) => (r - p.index) % 64 === 0 || (r + 1 - p.index) % 64 === 0)
              if (!hit && before.has(p.index)) expect(p).toBe(before.get(p.index))
            }
          }
          reached.clear()
          outside = false
          previous = now
        }
      }
    })
  )

  it.effect("a call that stores nothing returns the previous pages; a store copies its page only", () =>
    Effect.gen(function* () {
      const { tracked } = yield* twins
      tracked.call("fill", [0, 1, 2 * PAGE]) // pages 0 and 1 non-zero
      tracked.call("grow", [70])
      tracked.call("store8", [70 * PAGE + 5, 9])
      const first = state(tracked.snapshot())
      expect(first.pages.map((p) => p.index)).toEqual([0, 1, 70])
      tracked.call("noop", [])
      const second = state(tracked.snapshot())
      expect(second.pages).toBe(first.pages) // not even a new array
      tracked.call("store8", [PAGE + 3, 2]) // page 1 (bit 1: pages 1, 2, 65, 66 are compared)
      const third = state(tracked.snapshot())
      expect(third.pages.map((p) => p.index)).toEqual([0, 1, 70])
      expect(third.pages[0]).toBe(first.pages[0])
      expect(third.pages[2]).toBe(first.pages[2])
      expect(third.pages[1]!.data).not.toBe(first.pages[1]!.data)
      expect(third.pages[1]!.data[3]).toBe(2)
      expect(first.pages[1]!.data[3]).toBe(1) // the earlier snapshot is not changed
      // a store of the byte already there: compared, found equal, kept
      tracked.call("store8", [PAGE + 3, 2])
      expect(state(tracked.snapshot()).pages[1]).toBe(third.pages[1])
      // a host write is not seen by the barrier: the next snapshot scans and copies every page
      expect(tracked.write(10, new Uint8Array([7]))).toBeUndefined()
      const fourth = state(tracked.snapshot())
      for (const [k, p] of fourth.pages.entries()) expect(p.data).not.toBe(third.pages[k]!.data)
      expect(fourth.pages[0]!.data[10]).toBe(7)
    })
  )

  it.effect("without the option, or for an imported memory, every snapshot copies every page (no sharing)", () =>
    Effect.gen(function* () {
      const rewritten = rewriteModule(yield* Effect.promise(() => wat(MODULE)), { exportState: true, dirtyPages: true })
      if (!rewritten.ok) throw rewritten.error
      const module = new WebAssembly.Module(rewritten.value.bytes as Uint8Array<ArrayBuffer>)
      const plain = live(instantiate(module, {}))
      plain.call("store8", [3, 1])
      const a = state(plain.snapshot())
      const b = state(plain.snapshot())
      expect(b.pages[0]!.data).not.toBe(a.pages[0]!.data)

      const importing = yield* Effect.promise(() =>
        wat(
          `(module (import "env" "memory" (memory 1 4)) (func (export "store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))`
        )
      )
      const r = rewriteModule(importing, { exportState: true, dirtyPages: true })
      if (!r.ok) throw r.error
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 })
      const shared = live(
        instantiate(
          new WebAssembly.Module(r.value.bytes as Uint8Array<ArrayBuffer>),
          { env: { memory } },
          {
            dirtyPages: true
          }
        )
      )
      shared.call("store8", [3, 1])
      const c = state(shared.snapshot())
      new Uint8Array(memory.buffer)[9] = 5 // its holder writes it between calls
      const d = state(shared.snapshot())
      expect(d.pages[0]!.data).not.toBe(c.pages[0]!.data)
      expect(d.pages[0]!.data[9]).toBe(5)
    })
  )

  it("changedPages: nothing marked → the previous array; a marked page that became zero is dropped", () => {
    const memory = new WebAssembly.Memory({ initial: 3 })
    const bytes = new Uint8Array(memory.buffer)
    bytes[5] = 1
    bytes[2 * PAGE + 5] = 2
    const before = nonZeroPages(memory.buffer)
    expect(before.map((p) => p.index)).toEqual([0, 2])
    expect(changedPages(memory.buffer, before, 0, 0)).toBe(before)
    bytes[2 * PAGE + 5] = 0
    const after = changedPages(memory.buffer, before, 1 << 2, 0)
    expect(after.map((p) => p.index)).toEqual([0])
    expect(after[0]).toBe(before[0])
  })
})
