/**
 * Recovery with the dirty-page write barrier (issue 13 item 7): an agent
 * compiled with the barrier (as the domain compiles it for this engine,
 * `capabilities.dirtyPages`) comes back exactly after its worker is lost —
 * page-crossing stores, bulk writes, host writes, data segments and internal
 * state included — and the same workload without the barrier recovers the
 * same bytes.
 */
import { agentId, type HostImports, moduleHash } from "@agent-runtime/domain"
import { DIRTY_PAGES_EXPORT, rewriteModule } from "@agent-runtime/wasm-binary"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { NodeEngine } from "../src/index.js"
import { call, MiB, PAGE, wat } from "./helpers.js"

const MODULE = `
(module
  (memory 70)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 65540) "from a data segment")
  (func (export "calls") (result i32) (global.get $calls))
  (func (export "noop") (global.set $calls (i32.add (global.get $calls) (i32.const 1))))
  (func (export "store64") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "load64") (param i32) (result i64) (i64.load (local.get 0)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "storeThenTrap") (param i32 i64) (i64.store (local.get 0) (local.get 1)) (unreachable))
)`

let n = 0

const spawn = (engine: NodeEngine.NodeEngineShape, barrier: boolean) =>
  Effect.gen(function* () {
    const bytes = yield* Effect.promise(() => wat(MODULE))
    // what the domain does for this engine: the state rewrite, plus the barrier when the engine asks for it
    const r = rewriteModule(bytes, { exportState: true, dirtyPages: barrier })
    if (!r.ok) return yield* Effect.die(r.error)
    expect(r.value.addedExports.includes(DIRTY_PAGES_EXPORT)).toBe(barrier)
    const compiled = yield* engine.compile(r.value.bytes, moduleHash(`dirty-${barrier}-${++n}`))
    return yield* engine.instantiate(compiled, {
      agentId: agentId(`dirty-${barrier}-${n}`),
      memoryLimit: 16 * MiB,
      imports: {} as HostImports
    })
  })

describe("recovery with the dirty-page barrier", () => {
  const engine = NodeEngine.make({ workers: 1, recovery: "snapshot" })
  afterAll(() => Effect.runPromise(engine.shutdown))

  it("the engine asks for the barrier while it tracks state for recovery, not under 'restart'", () => {
    expect(engine.capabilities.dirtyPages).toBe(true)
    const restart = NodeEngine.make({ workers: 1, recovery: "restart" })
    expect(restart.capabilities.dirtyPages).toBeUndefined()
    return Effect.runPromise(restart.shutdown)
  })

  it.effect("a page-crossing store, a fill, a host write and the data segment survive a crash, byte for byte", () =>
    Effect.gen(function* () {
      const agents = [yield* spawn(engine, true), yield* spawn(engine, false)]
      for (const a of agents) {
        // a value straddling pages 1 and 2; a call that stores nothing; a fill over a page boundary
        yield* call(a, "store64", 2 * PAGE - 3, 0x1122334455667788n)
        yield* call(a, "noop")
        yield* call(a, "fill", 5 * PAGE - 10, 0xab, 20)
        yield* call(a, "noop")
        // a host write (not seen by the barrier), then calls that store nothing
        yield* a.writeMemory(40 * PAGE + 7, new Uint8Array([9, 8, 7]))
        yield* call(a, "noop")
        // aliasing: page 66 ≡ 2 (mod 64)
        yield* call(a, "store64", 66 * PAGE + 8, -5n)
        // a call that stores, then traps: its store stays (the engine does not roll back at this level)
        const trap = yield* Effect.flip(a.invoke("storeThenTrap", [50 * PAGE - 2, 0x0102030405060708n]))
        expect(trap._tag).toBe("Trap")
        yield* call(a, "noop")
      }
      const before = yield* Effect.forEach(agents, (a) => a.readMemory(0, 70 * PAGE))
      expect(Buffer.compare(before[0]!, before[1]!)).toBe(0)
      yield* engine.crashWorker(agents[0]!)
      for (const [k, a] of agents.entries()) {
        expect(yield* call(a, "load64", 2 * PAGE - 3)).toEqual([0x1122334455667788n])
        expect(yield* call(a, "load64", 50 * PAGE - 2)).toEqual([0x0102030405060708n])
        expect(yield* call(a, "calls")).toEqual([4])
        const after = yield* a.readMemory(0, 70 * PAGE)
        expect(Buffer.compare(after, before[k]!)).toBe(0)
        expect(Buffer.from(after.subarray(65540, 65540 + 19)).toString()).toBe("from a data segment")
      }
    })
  )

  it.effect("a store right after a recovery is tracked from the restored state", () =>
    Effect.gen(function* () {
      const a = yield* spawn(engine, true)
      yield* call(a, "store64", 3 * PAGE - 4, -1n)
      yield* engine.crashWorker(a)
      // the restore wrote memory from outside: the next comparison is full, then the barrier again
      yield* call(a, "store64", 10 * PAGE - 2, 42n)
      yield* engine.crashWorker(a)
      expect(yield* call(a, "load64", 3 * PAGE - 4)).toEqual([-1n])
      expect(yield* call(a, "load64", 10 * PAGE - 2)).toEqual([42n])
    })
  )
})
