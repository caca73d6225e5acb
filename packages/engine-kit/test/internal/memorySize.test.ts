/**
 * The memory size a call reports (`memorySize.ts`, `core.ts`
 * `callMemoryBytes`): V8 detaches an unshared memory's previous buffer on
 * every growth — by the guest, by the host, inside a nested host call — which
 * is what lets a call keep the last buffer and read its length instead of
 * the `buffer` accessor; and over seeded scripts of calls that grow memory
 * every way (unshared, 0 pages, imported, shared), every call's reported
 * `memoryBytes` is what `memory.buffer.byteLength` reads after it.
 */
import type { CallSlot } from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { prng } from "@agent-runtime/test-support/mutate"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { instantiate, type LiveInstance } from "../../src/internal/core.js"
import { helperModule, keptBytes, memorySize, sharedHelperModule } from "../../src/internal/memorySize.js"

const PAGE = 65_536

/**
 * Grows its memory every way: `grow` in the guest, `hostGrow` through an
 * import that calls `Memory.prototype.grow`, `nested` through an import that
 * calls back into `grow`, `growThenTrap` grows and traps.
 */
const grower = (memory: string) => `
(module
  (import "host" "grow" (func $hostGrow (param i32)))
  (import "host" "reenter" (func $reenter (param i32)))
  ${memory}
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "hostGrow") (param i32) (result i32) (call $hostGrow (local.get 0)) (memory.size))
  (func (export "nested") (param i32) (result i32) (call $reenter (local.get 0)) (memory.size))
  (func (export "growThenTrap") (param i32) (drop (memory.grow (local.get 0))) (unreachable))
  (func (export "size") (result i32) (memory.size))
)`

/** A grower instance; the host imports act on `target` (its memory, its `grow` export). */
const growerInstance = async (memoryDecl: string, extraImports: WebAssembly.Imports = {}) => {
  const module = new WebAssembly.Module((await wat(grower(memoryDecl))) as Uint8Array<ArrayBuffer>)
  const target: { memory?: WebAssembly.Memory; grow?: (pages: number) => number } = {}
  const imports: WebAssembly.Imports = {
    ...extraImports,
    host: {
      grow: (pages: number) => void target.memory!.grow(pages),
      reenter: (pages: number) => void target.grow!(pages)
    }
  }
  return { module, imports, target }
}

describe("V8 detaches an unshared memory's buffer on growth (what the kept buffer relies on)", () => {
  it.effect("by the host, by the guest, inside a nested host call; a grow of 0 or a refused one keeps the size", () =>
    Effect.promise(async () => {
      const { module, imports, target } = await growerInstance(`(memory (export "memory") 1 16)`)
      const instance = new WebAssembly.Instance(module, imports)
      const memory = instance.exports["memory"] as WebAssembly.Memory
      const exported = instance.exports as Record<string, (n?: number) => number>
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
        expect(keptBytes(before), what).toBe(size)
        grow()
        expect(before.byteLength, what).toBe(0) // detached
        expect(keptBytes(before), what).toBe(0) // so a kept buffer says "read again"
        expect(memory.buffer.byteLength, what).toBe(size + PAGE)
      }
      // no growth: whatever the kept buffer says (its length, or 0 if detached) is right or "read again"
      for (const noGrowth of [() => memory.grow(0), () => exported["grow"]!(0), () => exported["grow"]!(1000)]) {
        const before = memory.buffer
        const size = before.byteLength
        noGrowth()
        expect([0, size]).toContain(before.byteLength)
        expect(memory.buffer.byteLength).toBe(size)
      }
      expect(exported["size"]!()).toBe(memory.buffer.byteLength / PAGE)
    })
  )

  it("a shared memory's buffer is not detached (a kept one goes stale: such memories use the helper)", () => {
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true })
    const before = shared.buffer
    shared.grow(1)
    expect(before.byteLength).toBe(PAGE)
    expect(shared.buffer.byteLength).toBe(2 * PAGE)
  })
})

describe("memory size helper", () => {
  it("both helpers compile here (so the fast paths are the ones tested)", () => {
    expect(helperModule()).not.toBeNull()
    expect(sharedHelperModule()).not.toBeNull()
  })

  it("reads what memory.buffer.byteLength reads, before and after growth", () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 8 })
    const size = memorySize(memory)
    expect(size()).toBe(memory.buffer.byteLength)
    memory.grow(3)
    expect(size()).toBe(4 * 65_536)
    expect(size()).toBe(memory.buffer.byteLength)
    const empty = new WebAssembly.Memory({ initial: 0 })
    const emptySize = memorySize(empty)
    expect(emptySize()).toBe(0)
    empty.grow(2)
    expect(emptySize()).toBe(2 * 65_536)
  })

  it("reads a shared memory through the shared helper, before and after growth", () => {
    const shared = new WebAssembly.Memory({ initial: 2, maximum: 4, shared: true })
    const size = memorySize(shared)
    expect(size()).toBe(2 * 65_536)
    shared.grow(1)
    expect(size()).toBe(3 * 65_536)
    const big = new WebAssembly.Memory({ initial: 0, maximum: 65_536, shared: true })
    expect(memorySize(big)()).toBe(0)
  })
})

describe("a call reports the memory size memory.buffer.byteLength reads after it", () => {
  const kinds: ReadonlyArray<{
    readonly name: string
    readonly decl: string
    readonly imported?: () => WebAssembly.Memory
  }> = [
    { name: "exported memory of 1 page (kept buffer)", decl: `(memory (export "memory") 1 64)` },
    { name: "exported memory of 0 pages (helper after 64 calls)", decl: `(memory (export "memory") 0 64)` },
    {
      name: "imported unshared memory",
      decl: `(import "env" "memory" (memory 1 64))`,
      imported: () => new WebAssembly.Memory({ initial: 1, maximum: 64 })
    },
    {
      name: "imported shared memory (helper after 64 calls)",
      decl: `(import "env" "memory" (memory 1 64 shared))`,
      imported: () => new WebAssembly.Memory({ initial: 1, maximum: 64, shared: true })
    }
  ]
  for (const kind of kinds) {
    it.effect(`${kind.name}: growth by the guest, the host, nested calls, a trap after growing`, () =>
      Effect.promise(async () => {
        for (const seed of [1, 2, 3]) {
          const imported = kind.imported?.()
          const { module, imports, target } = await growerInstance(
            kind.decl,
            imported === undefined ? {} : { env: { memory: imported } }
          )
          const made = instantiate(module, imports)
          if (made instanceof Error) throw made
          const live: LiveInstance = made
          const memory = live.memory!
          target.memory = memory
          target.grow = live.exports["grow"] as (pages: number) => number
          const callers = {
            grow: live.prepareDirect("grow")!,
            hostGrow: live.prepareDirect("hostGrow")!,
            nested: live.prepareDirect("nested")!,
            growThenTrap: live.prepareDirect("growThenTrap")!,
            size: live.prepareDirect("size")!
          }
          const slot: CallSlot = { result: undefined, memoryBytes: -1, fuelRemaining: undefined }
          const random = prng(seed)
          let pages = memory.buffer.byteLength / PAGE
          for (let step = 0; step < 400; step++) {
            // mostly calls that do not grow (the kept buffer's common case), growth now and then
            const roll = random.int(20)
            const by = random.int(3) // 0..2 pages; past the maximum memory.grow fails (-1) and nothing changes
            const grows = pages + by <= 64 ? by : 0
            if (roll === 0) {
              memory.grow(grows) // between calls, by the host
              pages += grows
              continue
            }
            const [name, args] =
              roll === 1
                ? (["grow", [by]] as const)
                : roll === 2
                  ? (["hostGrow", [grows]] as const)
                  : roll === 3
                    ? (["nested", [grows]] as const)
                    : roll === 4
                      ? (["growThenTrap", [by]] as const)
                      : (["size", []] as const)
            const failed = callers[name](args, undefined, slot)
            pages = memory.buffer.byteLength / PAGE
            if (name === "growThenTrap") {
              expect(failed?._tag).toBe("Trap")
              continue
            }
            expect(failed).toBeUndefined()
            expect(slot.memoryBytes, `${kind.name}, seed ${seed}, step ${step}: ${name}(${args.join()})`).toBe(
              memory.buffer.byteLength
            )
            expect(live.memoryBytes()).toBe(slot.memoryBytes)
            if (name === "size") expect(slot.result).toBe(pages)
          }
          expect(pages).toBeGreaterThan(1) // the script did grow it
        }
      })
    )
  }
})
