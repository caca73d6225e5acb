/**
 * Issue 12 items 1 and "capacity before V8's wall" on the real engine: a
 * table bomb stays inside its budget, and live instances are counted and
 * refused (typed) before V8 refuses new memories.
 */
import { verifierLayer } from "@agent-runtime/conformance"
import { AgentRuntime, AgentRuntimes, agentId, makeMetadata, MemoryBudget } from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { NativeEngine } from "../src/index.js"

const runtimeLayer = (settings: AgentRuntimes.SettingsInput = {}) =>
  AgentRuntimes.layerMemory(settings).pipe(
    Layer.provide(Layer.mergeAll(NativeEngine.layer, verifierLayer({ allowUnsigned: true })))
  )

const load = (text: string, name: string) =>
  Effect.gen(function*() {
    const runtime = yield* AgentRuntime
    const bytes = yield* Effect.promise(() => wat(text))
    return yield* runtime.loadModule(bytes, makeMetadata({ name, version: "1.0.0" }))
  })

const TABLE_BOMB = `(module (table 1 funcref)
  (func (export "grow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0))))`

describe("capacity (issue 12)", () => {
  it.effect("item 1: table.grow(9_999_999) returns -1 inside the guest; the pool counts the agent's budget only", () =>
    Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      const m = yield* load(TABLE_BOMB, "table-bomb")
      for (let i = 0; i < 8; i++) {
        yield* runtime.spawnAgent(agentId(`bomb-${i}`), m, { memoryLimit: MemoryBudget.MiB })
        expect(yield* runtime.invoke(agentId(`bomb-${i}`), "grow", [9_999_999])).toEqual([-1])
        // growth within the budget's table share still works
        expect(yield* runtime.invoke(agentId(`bomb-${i}`), "grow", [100])).toEqual([1])
      }
      const stats = yield* runtime.stats
      expect(stats.memory.used).toBe(8 * MemoryBudget.MiB)
      const health = yield* runtime.checkHealth
      expect(health.every((h) => h.status === "Healthy")).toBe(true)
    }).pipe(Effect.provide(runtimeLayer())))

  it.effect("pool.maxInstances: the 51st spawn fails with ResourceExhausted (instances); the runtime stays healthy", () =>
    Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      const m = yield* load(`(module (memory 1) (func (export "ping") (result i32) (i32.const 1)))`, "one-page")
      for (let i = 0; i < 50; i++) yield* runtime.spawnAgent(agentId(`a-${i}`), m, { memoryLimit: MemoryBudget.MiB })
      const refused = yield* Effect.flip(runtime.spawnAgent(agentId("a-50"), m, { memoryLimit: MemoryBudget.MiB }))
      expect(refused._tag).toBe("ResourceExhausted")
      expect(refused).toMatchObject({ resource: "instances", requested: 1, available: 0 })
      expect(yield* runtime.invoke(agentId("a-0"), "ping", [])).toEqual([1])
      yield* runtime.evictAgent(agentId("a-0"), "Manual")
      yield* runtime.spawnAgent(agentId("a-50"), m, { memoryLimit: MemoryBudget.MiB })
      expect((yield* runtime.stats).memory.used).toBe(50 * MemoryBudget.MiB)
    }).pipe(Effect.provide(runtimeLayer({ pool: { maxInstances: 50 } }))))
})
