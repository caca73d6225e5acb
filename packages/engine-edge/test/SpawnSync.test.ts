/**
 * The edge engine's `instantiateSync` against its `instantiate` (the engine
 * alone, every bundled variant: the same instance state or the same typed
 * error), and the runtime's synchronous spawn step on the edge engine
 * against the Effect path (the engine without `instantiateSync`): the same
 * results, errors, events and pool accounting — with code generation
 * forbidden in this process, as in workerd.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  type AgentConfigShape,
  AgentRuntime,
  AgentRuntimes,
  agentId,
  type CompiledModule,
  makeMetadata,
  moduleHash,
  type RuntimeEvent,
  WasmEngine,
  type WasmEngineShape
} from "@agent-runtime/domain"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { type BundleContents, BundleRegistry, BundleVerifier } from "../src/bundle/index.js"
import { EdgeEngine } from "../src/index.js"
import { forbidRuntimeCompile, install, MiB, standardBundle } from "./helpers.js"

let contents: BundleContents
let allow: () => void

beforeAll(async () => {
  contents = install(await Effect.runPromise(standardBundle()))
  allow = forbidRuntimeCompile()
})
afterAll(() => allow())

const registry = () => Effect.orDie(BundleRegistry.make(contents))

describe("EdgeEngine.instantiateSync ≡ instantiate", () => {
  /** Both instantiations of one handle: the instance's observable state, or the error (same class and fields). */
  const both = (engine: WasmEngineShape, compiled: CompiledModule, memoryLimit: number) =>
    Effect.gen(function* () {
      const options = { agentId: agentId("a"), memoryLimit, imports: {} }
      const now = engine.instantiateSync!(compiled, options)
      const viaEffect = yield* Effect.exit(engine.instantiate(compiled, options))
      if (Exit.isFailure(viaEffect)) {
        const error = yield* Effect.flip(engine.instantiate(compiled, options))
        expect(now).toBeInstanceOf(Error)
        expect(now).toEqual(error)
        expect((now as Error).constructor).toBe(error.constructor)
        return (now as { _tag: string })._tag
      }
      expect(now).not.toBeInstanceOf(Error)
      const { instance, memoryBytes } = now as Exclude<typeof now, Error>
      expect(memoryBytes).toBe(yield* instance.memoryBytes)
      expect(memoryBytes).toBe(yield* viaEffect.value.memoryBytes)
      expect(yield* instance.snapshot).toEqual(yield* viaEffect.value.snapshot)
      return memoryBytes
    })

  it.effect("every bundled variant: the same memory right after instantiation, the same state; and every error", () =>
    Effect.gen(function* () {
      const engine = EdgeEngine.make(yield* registry())
      expect(engine.instantiateSync).toBeTypeOf("function")
      const modules = Object.values(contents.modules)
      expect(modules.length).toBeGreaterThan(3)
      let withMemory = 0
      for (const [k, module] of modules.entries()) {
        const compiled: CompiledModule = { hash: moduleHash(`m${k}`), byteLength: 0, handle: module }
        const bytes = yield* both(engine, compiled, 64 * MiB)
        expect(bytes).toBeTypeOf("number")
        if ((bytes as number) > 0) withMemory++
        // 1 byte of budget: over it whenever the instance holds memory (or table entries)
        expect(yield* both(engine, compiled, 1)).toBe((bytes as number) > 1 ? "MemoryExceeded" : bytes)
      }
      expect(withMemory).toBeGreaterThan(2)
      const foreign: CompiledModule = { hash: moduleHash("x"), byteLength: 0, handle: {} }
      expect(yield* both(engine, foreign, MiB)).toBe("InstantiationError")
      const refused = engine.instantiateSync!(foreign, { agentId: agentId("a"), memoryLimit: MiB, imports: {} })
      expect(refused).toMatchObject({ _tag: "InstantiationError", reason: "not a module of the edge engine's bundle" })
    })
  )
})

interface Scenario {
  readonly name: string
  readonly agent: "counter" | "looper"
  readonly config: AgentConfigShape
  /** Whether the second spawn (compiled variant cached) may take the synchronous step. */
  readonly sync: boolean
}

const scenarios: ReadonlyArray<Scenario> = [
  { name: "a spawn that succeeds", agent: "counter", config: { memoryLimit: MiB }, sync: true },
  { name: "autoStart: false", agent: "counter", config: { memoryLimit: MiB, autoStart: false }, sync: true },
  { name: "another bundled variant (2 MiB)", agent: "counter", config: { memoryLimit: 2 * MiB }, sync: true },
  { name: "a metered agent", agent: "looper", config: { memoryLimit: MiB, fuel: 1_000_000 }, sync: true },
  {
    name: "a config the bundle lacks (refused at compile)",
    agent: "counter",
    config: { memoryLimit: 3 * MiB },
    sync: false
  }
]

/** The edge engine, counting its synchronous instantiations; or without `instantiateSync` (the Effect path). */
const engineLayer = (withSync: boolean, counter: { calls: number }) =>
  Layer.effect(
    WasmEngine,
    Effect.map(registry(), (r): WasmEngineShape => {
      const edge = EdgeEngine.make(r)
      const instantiateSync = edge.instantiateSync!
      return withSync
        ? {
            ...edge,
            instantiateSync: (compiled, options) => {
              counter.calls++
              return instantiateSync(compiled, options)
            }
          }
        : { ...edge, instantiateSync: undefined }
    })
  )

/** An event without what differs between runs (its id and time). */
const comparable = (e: RuntimeEvent) => {
  const { eventId: _, timestamp: __, runtimeId: ___, ...rest } = e as unknown as Record<string, unknown>
  return rest
}

/** Everything observable of two spawns (the first compiles, the second finds the variant cached). */
const observe = (scenario: Scenario, withSync: boolean) => {
  const counter = { calls: 0 }
  const layer = Layer.unwrap(
    Effect.map(registry(), (r) =>
      AgentRuntimes.layerMemory({ id: "rt-edge" }).pipe(
        Layer.provide(Layer.mergeAll(engineLayer(withSync, counter), BundleVerifier.layer(r)))
      )
    )
  )
  return Effect.scoped(
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const events: Array<RuntimeEvent> = []
      const stream = yield* runtime.events
      yield* Effect.forkScoped(Stream.runForEach(stream, (e) => Effect.sync(() => void events.push(e))))
      const m = yield* runtime.loadModule(
        readAgent(scenario.agent),
        makeMetadata({ name: scenario.agent, version: "1.0.0" })
      )
      const outcomes: Array<unknown> = []
      const pools: Array<unknown> = []
      for (const id of ["first", "second"]) {
        const exit = yield* Effect.exit(runtime.spawnAgent(agentId(id), m, scenario.config))
        outcomes.push(
          Exit.isSuccess(exit)
            ? { ok: [exit.value.agentId, exit.value.state, exit.value.budget, exit.value.fuelRemaining] }
            : { error: JSON.parse(JSON.stringify(exit.cause)) }
        )
        const stats = yield* runtime.stats
        pools.push({ memory: stats.memory, spawned: stats.spawned, agents: (yield* runtime.agents).length })
      }
      for (let k = 0; k < 20; k++) yield* Effect.yieldNow // events reach the subscriber asynchronously
      const running = (yield* runtime.agents).some((a) => a.agentId === "second" && a.state === "Running")
      const call = running
        ? yield* runtime.invoke(agentId("second"), scenario.agent === "counter" ? "add" : "spin_n", [7])
        : undefined
      const stats = yield* runtime.stats
      return {
        outcomes,
        pools,
        call,
        cache: [stats.cache.hits, stats.cache.misses],
        events: events.filter((e) => e._tag !== "ModuleLoaded").map(comparable),
        syncCalls: counter.calls
      }
    }).pipe(Effect.provide(layer))
  )
}

describe("spawn on the edge engine in one synchronous step ≡ the Effect path", () => {
  for (const scenario of scenarios) {
    it.effect(scenario.name, () =>
      Effect.gen(function* () {
        const { syncCalls, ...sync } = yield* observe(scenario, true)
        const { syncCalls: none, ...effect } = yield* observe(scenario, false)
        expect(none).toBe(0)
        expect(syncCalls).toBe(scenario.sync ? 1 : 0) // the first spawn compiles; the second finds its variant cached
        expect(sync).toEqual(effect)
        const succeeded = sync.outcomes.filter((o) => (o as { ok?: unknown }).ok !== undefined).length
        expect(succeeded).toBe(scenario.sync ? 2 : 0)
        expect(sync.events.filter((e) => e._tag === "AgentSpawned")).toHaveLength(succeeded)
        if (scenario.sync && scenario.config.autoStart !== false) expect(sync.call).toEqual([7])
      })
    )
  }
})
