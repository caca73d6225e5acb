/**
 * Issue 12 items 1 and "capacity before V8's wall" on the real engine: a
 * table bomb stays inside its budget, and live instances are counted and
 * refused (typed) before V8 refuses new memories.
 */
import { verifierLayer } from "@agent-runtime/conformance"
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  DEFAULT_MAX_INSTANCES,
  makeMetadata,
  MemoryBudget
} from "@agent-runtime/domain"
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
  Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const bytes = yield* Effect.promise(() => wat(text))
    return yield* runtime.loadModule(bytes, makeMetadata({ name, version: "1.0.0" }))
  })

const TABLE_BOMB = `(module (table 1 funcref)
  (func (export "grow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0))))`

describe("capacity (issue 12)", () => {
  it.effect("item 1: table.grow(9_999_999) returns -1 inside the guest; the pool counts the agent's budget only", () =>
    Effect.gen(function* () {
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
    }).pipe(Effect.provide(runtimeLayer()))
  )

  it.effect(
    "pool.maxInstances: the 51st spawn fails with ResourceExhausted (instances); the runtime stays healthy",
    () =>
      Effect.gen(function* () {
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
      }).pipe(Effect.provide(runtimeLayer({ pool: { maxInstances: 50 } })))
  )

  // 15 000 spawn attempts of a 1-page module with the default maxInstances (10 000): past V8's wall of
  // ~12 800 live memories per process had nothing counted them. The pool is made big enough (16 GiB of
  // accounting, 64 KiB really used per agent) that instances, not memory, are the limit. Proves: the
  // 5 000 attempts past the cap are typed `ResourceExhausted { resource: "instances" }` refusals (no
  // RangeError from V8, no defect), the runtime and its agents keep working at the cap, and evicting
  // everything returns the pool to zero.
  it.live(
    "15 000 spawn attempts: typed refusals past the default maxInstances, a healthy process, the pool back to zero",
    () =>
      Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* load(`(module (memory 1) (func (export "ping") (result i32) (i32.const 1)))`, "one-page")
        const ATTEMPTS = 15_000
        const outcomes = new Map<string, number>()
        for (let i = 0; i < ATTEMPTS; i++) {
          const r = yield* Effect.result(runtime.spawnAgent(agentId(`s-${i}`), m, { memoryLimit: MemoryBudget.MiB }))
          const key =
            r._tag === "Success"
              ? "spawned"
              : r.failure._tag === "ResourceExhausted"
                ? `ResourceExhausted:${r.failure.resource}`
                : r.failure._tag
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
        }
        expect(Object.fromEntries(outcomes)).toEqual({
          spawned: DEFAULT_MAX_INSTANCES,
          "ResourceExhausted:instances": ATTEMPTS - DEFAULT_MAX_INSTANCES
        })
        const full = yield* runtime.stats
        expect(full.agents).toBe(DEFAULT_MAX_INSTANCES)
        expect(full.memory.used).toBe(DEFAULT_MAX_INSTANCES * MemoryBudget.MiB)
        // at the cap the process still instantiates: calls work and a raw WebAssembly.Memory can still be made
        expect(yield* runtime.invoke(agentId("s-0"), "ping", [])).toEqual([1])
        expect(yield* runtime.invoke(agentId(`s-${DEFAULT_MAX_INSTANCES - 1}`), "ping", [])).toEqual([1])
        expect(new WebAssembly.Memory({ initial: 1 }).buffer.byteLength).toBe(65_536)
        for (let i = 0; i < DEFAULT_MAX_INSTANCES; i++) yield* runtime.evictAgent(agentId(`s-${i}`), "Manual")
        const empty = yield* runtime.stats
        expect(empty.agents).toBe(0)
        expect(empty.memory).toMatchObject({ used: 0, reserved: 0 })
        expect(empty.status).toBe("Ready")
      }).pipe(Effect.provide(runtimeLayer({ pool: { totalMemory: 16 * 1024 * MemoryBudget.MiB } }))),
    120_000
  )
})
