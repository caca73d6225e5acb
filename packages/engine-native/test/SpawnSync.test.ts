/**
 * The synchronous spawn (`WasmEngineShape.instantiateSync`, one step from
 * claim to events) against the Effect path (`instantiate`, under the
 * agent's mailbox) on the native engine: the same results, errors, events
 * and pool accounting for every outcome — a spawn that succeeds, one not
 * started, a trap in the start function, memory over the budget right after
 * instantiation, a caller-supplied table the engine refuses, a missing
 * import, and a module with `_initialize` (which always takes the Effect path).
 */
import { verifierLayer } from "@agent-runtime/conformance"
import {
  type AgentConfigShape,
  AgentRuntime,
  AgentRuntimes,
  agentId,
  makeMetadata,
  MemoryBudget,
  type RuntimeEvent,
  WasmEngine,
  type WasmEngineShape
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { NativeEngine } from "../src/index.js"

const MiB = MemoryBudget.MiB

interface Scenario {
  readonly name: string
  readonly wat: string
  readonly config: () => AgentConfigShape
  readonly settings?: AgentRuntimes.SettingsInput
  /** Whether the second spawn (compiled variant cached) may take the synchronous step. */
  readonly sync: boolean
}

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "a spawn that succeeds",
    wat: `(module (memory 2) (func (export "ping") (result i32) (i32.const 1)))`,
    config: () => ({ memoryLimit: MiB }),
    sync: true
  },
  {
    name: "autoStart: false",
    wat: `(module (memory 1) (func (export "ping") (result i32) (i32.const 1)))`,
    config: () => ({ memoryLimit: MiB, autoStart: false }),
    sync: true
  },
  {
    name: "a critical agent",
    wat: `(module (memory 1) (table 3 funcref) (func (export "ping") (result i32) (i32.const 1)))`,
    config: () => ({ memoryLimit: 2 * MiB, critical: true, fuel: 1_000 }),
    sync: true
  },
  {
    name: "a trap in the start function",
    wat: `(module (memory 1) (func $s unreachable) (start $s) (func (export "ping") (result i32) (i32.const 1)))`,
    config: () => ({ memoryLimit: MiB }),
    sync: true
  },
  {
    name: "fuel running out in the start function",
    wat: `(module (memory 1) (func $s (loop $l (br $l))) (start $s))`,
    config: () => ({ memoryLimit: MiB, fuel: 10_000 }),
    sync: true
  },
  {
    name: "memory over the budget right after instantiation (caps off)",
    wat: `(module (memory 1) (func $s (drop (memory.grow (i32.const 20)))) (start $s))`,
    config: () => ({ memoryLimit: MiB }),
    settings: { limits: { memoryCap: false } },
    sync: true
  },
  {
    name: "a caller-supplied table without a maximum (refused by the engine)",
    wat: `(module (import "env" "t" (table 1 funcref)) (memory 1))`,
    config: () => ({
      memoryLimit: MiB,
      imports: { env: { t: new WebAssembly.Table({ initial: 1, element: "anyfunc" }) as never } }
    }),
    sync: true
  },
  {
    name: "a missing import",
    wat: `(module (import "env" "f" (func)) (memory 1))`,
    config: () => ({ memoryLimit: MiB }),
    sync: false
  },
  {
    name: "a module with _initialize (Effect path on both)",
    wat: `(module (memory 1) (global $g (mut i32) (i32.const 0))
      (func (export "_initialize") (global.set $g (i32.const 5)))
      (func (export "get") (result i32) (global.get $g)))`,
    config: () => ({ memoryLimit: MiB }),
    sync: false
  }
]

/** The native engine, counting its synchronous instantiations; or without `instantiateSync` (the Effect path). */
const engineLayer = (withSync: boolean, counter: { calls: number }) =>
  Layer.sync(WasmEngine, (): WasmEngineShape => {
    const native = NativeEngine.make()
    const instantiateSync = native.instantiateSync!
    return withSync
      ? {
          ...native,
          instantiateSync: (compiled, options) => {
            counter.calls++
            return instantiateSync(compiled, options)
          }
        }
      : { ...native, instantiateSync: undefined }
  })

/** An event without what differs between runs (its id and time). */
const comparable = (e: RuntimeEvent) => {
  const { eventId: _, timestamp: __, runtimeId: ___, ...rest } = e as unknown as Record<string, unknown>
  return rest
}

/** Everything observable of two spawns (the first compiles, the second finds the variant cached). */
const observe = (scenario: Scenario, withSync: boolean) => {
  const counter = { calls: 0 }
  const layer = AgentRuntimes.layerMemory({ id: "rt", ...scenario.settings }).pipe(
    Layer.provide(Layer.mergeAll(engineLayer(withSync, counter), verifierLayer({ allowUnsigned: true })))
  )
  return Effect.scoped(
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const events: Array<RuntimeEvent> = []
      const stream = yield* runtime.events
      yield* Effect.forkScoped(Stream.runForEach(stream, (e) => Effect.sync(() => void events.push(e))))
      const bytes = yield* Effect.promise(() => wat(scenario.wat))
      const m = yield* runtime.loadModule(bytes, makeMetadata({ name: "m", version: "1.0.0" }))
      const outcomes: Array<unknown> = []
      const pools: Array<unknown> = []
      for (const id of ["first", "second"]) {
        const exit = yield* Effect.exit(runtime.spawnAgent(agentId(id), m, scenario.config()))
        outcomes.push(
          Exit.isSuccess(exit)
            ? { ok: [exit.value.agentId, exit.value.state, exit.value.budget, exit.value.fuelRemaining] }
            : { error: JSON.parse(JSON.stringify(Exit.isFailure(exit) ? exit.cause : undefined)) }
        )
        const stats = yield* runtime.stats
        pools.push({ memory: stats.memory, spawned: stats.spawned, agents: (yield* runtime.agents).length })
      }
      // events are delivered asynchronously to the subscriber
      for (let k = 0; k < 20; k++) yield* Effect.yieldNow
      const calls =
        (yield* runtime.agents).find((a) => a.agentId === "first" && a.state === "Running") === undefined
          ? undefined
          : yield* runtime.invoke(agentId("first"), scenario.wat.includes('"get"') ? "get" : "ping", [])
      const stats = yield* runtime.stats
      return {
        outcomes,
        pools,
        calls,
        cache: [stats.cache.hits, stats.cache.misses],
        events: events.filter((e) => e._tag !== "ModuleLoaded").map(comparable),
        syncCalls: counter.calls
      }
    }).pipe(Effect.provide(layer))
  )
}

describe("spawn in one synchronous step (instantiateSync) ≡ the Effect path", () => {
  for (const scenario of scenarios) {
    it.effect(scenario.name, () =>
      Effect.gen(function* () {
        const viaSync = yield* observe(scenario, true)
        const viaEffect = yield* observe(scenario, false)
        const { syncCalls, ...sync } = viaSync
        const { syncCalls: none, ...effect } = viaEffect
        expect(none).toBe(0)
        // the first spawn compiles (Effect path); the second finds its variant cached
        expect(syncCalls).toBe(scenario.sync ? 1 : 0)
        expect(sync).toEqual(effect)
        // the comparison saw the events: a spawn that succeeds publishes them, a failed one none
        const succeeded = sync.outcomes.filter((o) => (o as { ok?: unknown }).ok !== undefined).length
        expect(sync.events.filter((e) => e._tag === "AgentSpawned")).toHaveLength(succeeded)
      })
    )
  }

  it.effect("the outcomes are what each scenario means (not just equal)", () =>
    Effect.gen(function* () {
      const tags = []
      for (const scenario of scenarios) {
        const seen = yield* observe(scenario, true)
        tags.push(
          (seen.outcomes[1] as { ok?: unknown; error?: unknown }).ok !== undefined
            ? "ok"
            : String(
                JSON.stringify((seen.outcomes[1] as { error: unknown }).error)
                  .match(/"_tag":"(\w+)"/g)
                  ?.pop()
              )
        )
        // a failed spawn releases its claim: nothing stays reserved
        const pool = seen.pools[1] as { memory: { reserved: number }; agents: number }
        if (tags.at(-1) !== "ok") expect([pool.memory.reserved, pool.agents]).toEqual([0, 0])
      }
      expect(tags).toEqual([
        "ok",
        "ok",
        "ok",
        '"_tag":"Trap"',
        '"_tag":"FuelExhausted"',
        '"_tag":"MemoryExceeded"',
        '"_tag":"InstantiationError"',
        '"_tag":"InstantiationError"',
        "ok"
      ])
    })
  )
})
