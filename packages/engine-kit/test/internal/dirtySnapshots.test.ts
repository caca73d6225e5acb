/**
 * Changes through the dirty-page write barrier (`InstanceConfig.dirtyPages`,
 * `LiveInstance.changes`, `dirty.ts` `pageChanges`): over random workloads —
 * stores that spill into the next page, pages 64 apart (the bitmap's
 * aliasing), fills and copies, growth, stores that zero a page again, host
 * writes, restores, calls that trap after storing, restarts — a saved state
 * kept as a delta store would (a whole snapshot when `changes` says
 * `undefined`, else its pages set and its zeroed pages dropped) is byte for
 * byte the full scan of the same instance's twin (same module, no barrier
 * reading), and no page is reported that no store can have reached.
 */
import { wat } from "@agent-runtime/test-support"
import { DIRTY_PAGES_EXPORT, rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { EngineState } from "@agent-runtime/domain"
import { instantiate, type LiveInstance } from "../../src/internal/core.js"
import { markedPages } from "../../src/internal/dirty.js"
import { prng } from "@agent-runtime/test-support/mutate"

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

const bytesOf = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64")

/** What a delta store holds: memory size, globals, and the non-zero pages by index (base64). */
interface Stored {
  memoryBytes: number
  globals: EngineState["globals"]
  pages: Map<number, string>
}

const storedOf = (s: EngineState): Stored => ({
  memoryBytes: s.memoryBytes,
  globals: s.globals,
  pages: new Map(s.pages.map((p) => [p.index, bytesOf(p.data)]))
})

const sorted = (st: Stored) => ({
  memoryBytes: st.memoryBytes,
  globals: st.globals,
  pages: [...st.pages.entries()].sort((a, b) => a[0] - b[0])
})

describe("changes through the write barrier", () => {
  it.effect(
    "random workloads: deltas applied to the last base equal a full scan; only reachable pages listed",
    () =>
      Effect.gen(function* () {
        for (const seed of [1, 7, 42, 1234]) {
          const { tracked, full } = yield* twins
          const next = prng(seed).int
          expect(tracked.changes(false)).toBeUndefined() // the first: no base yet
          let stored = storedOf(state(tracked.snapshot()))
          expect(sorted(stored)).toEqual(sorted(storedOf(state(full.snapshot()))))
          let saved: EngineState | undefined
          let deltas = 0
          const reached = new Set<number>() // pages written through the guest's own stores since the last changes
          let outside = false // since then: a write the barrier cannot see, or a trap (the next changes is undefined)
          for (let step = 0; step < 150; step++) {
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
                // a bulk write marks the pages of its range (every bit from 64 pages on)
                for (let p = from >>> 16; length > 0 && p <= (from + length - 1) >>> 16; p++) reached.add(p)
                if (length === 0)
                  for (let p = from >>> 16; p < (from === 0 ? 64 : (from >>> 16) + 1); p++) reached.add(p)
                break
              }
              case 4: {
                const length = next(PAGE)
                const to = Math.min(at, pages * PAGE - length)
                both("copy", [to, next(pages * PAGE - length), length])
                for (let p = to >>> 16; length > 0 && p <= (to + length - 1) >>> 16; p++) reached.add(p)
                if (length === 0) for (let p = to >>> 16; p < (to === 0 ? 64 : (to >>> 16) + 1); p++) reached.add(p)
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
                // pages 64 apart share a bit: a store to one reports both
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
            if (next(3) === 0) continue // several steps between saves: the bits add up
            const restart = next(12) === 0
            const c = tracked.changes(restart)
            if (c instanceof Error) throw c
            if (c === undefined) {
              // no base: the caller saves the whole snapshot
              stored = storedOf(state(tracked.snapshot()))
            } else {
              expect(outside || restart).toBe(false)
              deltas++
              const listed = [...c.pages.map((p) => p.index), ...c.zeroed]
              expect(c.pages.map((p) => p.index)).toEqual([...c.pages.map((p) => p.index)].sort((a, b) => a - b))
              expect(c.zeroed).toEqual([...c.zeroed].sort((a, b) => a - b))
              for (const index of listed) {
                // a listed page is one a store reached (or the page after one), modulo the bitmap's 64
                expect([...reached].some((r) => (r - index) % 64 === 0 || (r + 1 - index) % 64 === 0)).toBe(true)
              }
              if (reached.size === 0) expect(listed).toEqual([])
              for (const p of c.pages) stored.pages.set(p.index, bytesOf(p.data))
              for (const index of c.zeroed) stored.pages.delete(index)
              stored.memoryBytes = c.memoryBytes
              stored.globals = c.globals
            }
            expect(sorted(stored)).toEqual(sorted(storedOf(state(full.snapshot()))))
            reached.clear()
            outside = false
          }
          expect(deltas).toBeGreaterThan(10)
        }
      }),
    // 4 seeds of full scans next to the deltas: ≈ 5 s alone, 15 s on a loaded CI machine (the shared bound is 30 s)
    { timeout: 180_000 }
  )

  it.effect("a call that stores nothing reports nothing; a store reports its pages as views, not copies", () =>
    Effect.gen(function* () {
      const { tracked } = yield* twins
      tracked.call("fill", [0, 1, 2 * PAGE]) // pages 0 and 1 non-zero
      tracked.call("grow", [70])
      tracked.call("store8", [70 * PAGE + 5, 9])
      expect(tracked.changes(false)).toBeUndefined() // the first: the caller takes a whole snapshot
      tracked.call("noop", [])
      expect(tracked.changes(false)).toMatchObject({ pages: [], zeroed: [] })
      tracked.call("store8", [PAGE + 3, 2]) // page 1 (bit 1: pages 1, 2, 65, 66 reported when not zero / zero)
      const c = tracked.changes(false)
      if (c === undefined || c instanceof Error) throw new Error("changes expected")
      expect(c.pages.map((p) => p.index)).toEqual([1])
      expect(c.zeroed).toEqual([2, 65, 66])
      expect(c.pages[0]!.data.buffer).toBe(tracked.memory!.buffer) // a view of the memory
      expect(c.pages[0]!.data[3]).toBe(2)
      expect(c.memoryBytes).toBe(72 * PAGE)
      // restart: the caller lost track (a failed save) → undefined, then deltas again
      tracked.call("store8", [5, 3])
      expect(tracked.changes(true)).toBeUndefined()
      tracked.call("store8", [5, 4])
      const d = tracked.changes(false)
      if (d === undefined || d instanceof Error) throw new Error("changes expected")
      expect(d.pages.map((p) => p.index)).toEqual([0, 1]) // bit 0 and its spill: pages 0, 1, 64, 65 (zero)
      expect(d.zeroed).toEqual([64, 65])
      // a host write is not seen by the barrier: the next changes is undefined
      expect(tracked.write(10, new Uint8Array([7]))).toBeUndefined()
      expect(tracked.changes(false)).toBeUndefined()
      // snapshots copy every page and leave the record alone
      tracked.call("store8", [PAGE + 9, 1])
      const snap = state(tracked.snapshot())
      expect(snap.pages[0]!.data.buffer).not.toBe(tracked.memory!.buffer)
      const e = tracked.changes(false)
      if (e === undefined || e instanceof Error) throw new Error("changes expected")
      expect(e.pages.map((p) => p.index)).toEqual([1])
    })
  )

  it.effect("without the option, or for an imported memory, no changes are reported", () =>
    Effect.gen(function* () {
      const rewritten = rewriteModule(yield* Effect.promise(() => wat(MODULE)), { exportState: true, dirtyPages: true })
      if (!rewritten.ok) throw rewritten.error
      const module = new WebAssembly.Module(rewritten.value.bytes as Uint8Array<ArrayBuffer>)
      const plain = live(instantiate(module, {}))
      plain.call("store8", [3, 1])
      expect(plain.changes(false)).toBeUndefined()
      plain.call("store8", [3, 2])
      expect(plain.changes(false)).toBeUndefined()

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
          { dirtyPages: true }
        )
      )
      shared.call("store8", [3, 1])
      expect(shared.changes(false)).toBeUndefined()
      shared.call("store8", [3, 1])
      expect(shared.changes(false)).toBeUndefined()
    })
  )

  it("markedPages: nothing marked → nothing; marked pages split into views and zero indexes", () => {
    const memory = new WebAssembly.Memory({ initial: 3 })
    const bytes = new Uint8Array(memory.buffer)
    bytes[5] = 1
    bytes[2 * PAGE + 5] = 2
    expect(markedPages(memory.buffer, 0, 0)).toEqual({ pages: [], zeroed: [] })
    const m = markedPages(memory.buffer, (1 << 1) | (1 << 2), 0)
    expect(m.zeroed).toEqual([1])
    expect(m.pages.map((p) => p.index)).toEqual([2])
    expect(m.pages[0]!.data.buffer).toBe(memory.buffer)
    expect(m.pages[0]!.data.byteOffset).toBe(2 * PAGE)
    expect(m.pages[0]!.data[5]).toBe(2)
  })
})
