import {
  AgentFactories,
  AgentFactory,
  AgentRuntime,
  AgentSpawned,
  AgentNotFound,
  agentId,
  agentType,
  ConfigProviders,
  createRuntime,
  DomainEvent,
  EventBuses,
  makeMetadata,
  MetricsRepositories,
  ModuleRegistries,
  ModuleRegistry,
  ModuleRepositories,
  moduleHash,
  moduleId,
  InstanceRepositories,
  InstanceRepository,
  RepositoryError,
  type RuntimeEvent,
  type RuntimeMetrics,
  WasmEngine
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { loadWith, makeTestEngine, MiB, runtimeLayer, testVerifier, watModule } from "./support/TestEngine.js"

const sample = (timestamp: number, invocations: number, memoryUsed = 10): RuntimeMetrics => ({
  timestamp,
  agents: 1,
  memoryUsed,
  memoryTotal: 100,
  pressureLevel: "Normal",
  invocations,
  invocationErrors: 0,
  evictions: 0,
  cacheHits: 0,
  cacheMisses: 0
})

describe("MetricsRepository (memory)", () => {
  it.effect("records, queries a half-open range, aggregates by granularity", () =>
    Effect.gen(function* () {
      const repo = MetricsRepositories.makeMemory(100)
      for (const [t, n, m] of [
        [1000, 1, 10],
        [1500, 5, 30],
        [2100, 9, 20],
        [500, 0, 5]
      ] as const) {
        yield* repo.record(sample(t, n, m))
      }
      expect((yield* repo.query({ from: 1000, to: 2100 })).map((m) => m.timestamp)).toEqual([1000, 1500])
      const buckets = yield* repo.aggregate({ from: 0, to: 10_000 }, 1000)
      expect(buckets.map((b) => [b.bucketStart, b.samples, b.invocations, b.memoryUsedMax, b.memoryUsedAvg])).toEqual([
        [0, 1, 0, 5, 5],
        [1000, 2, 4, 30, 20],
        [2000, 1, 0, 20, 20]
      ])
    })
  )

  it.effect("keeps at most its capacity, dropping the oldest", () =>
    Effect.gen(function* () {
      const repo = MetricsRepositories.makeMemory(3)
      for (let i = 0; i < 5; i++) yield* repo.record(sample(i, i))
      expect((yield* repo.query({ from: 0, to: 100 })).map((m) => m.timestamp)).toEqual([2, 3, 4])
    })
  )
})

describe("ModuleRepository (memory)", () => {
  it.effect("saves, loads, finds by hash, lists, deletes", () =>
    Effect.gen(function* () {
      const repo = ModuleRepositories.makeMemory()
      const stored = {
        id: moduleId("m"),
        hash: moduleHash("h"),
        bytes: new Uint8Array([1, 2]),
        metadata: makeMetadata({ name: "n", version: "1" })
      }
      yield* repo.save(stored)
      expect((yield* repo.load(moduleId("m"))).bytes).toEqual(new Uint8Array([1, 2]))
      expect(yield* repo.findByHash(moduleHash("h"))).toEqual(Option.some("m"))
      expect((yield* repo.list).map((m) => m.metadata.name)).toEqual(["n"])
      yield* repo.delete(moduleId("m"))
      expect((yield* Effect.flip(repo.load(moduleId("m"))))._tag).toBe("ModuleNotFound")
      expect((yield* Effect.flip(repo.delete(moduleId("m"))))._tag).toBe("ModuleNotFound")
    })
  )
})

describe("Domain events", () => {
  it("encode to JSON and decode back (they cross processes)", () => {
    const event = new AgentSpawned({
      eventId: "e" as never,
      timestamp: 1,
      runtimeId: "r" as never,
      agentId: agentId("a"),
      moduleId: moduleId("m"),
      instanceId: "a#1" as never,
      memoryAllocated: MiB
    })
    const json = Schema.encodeSync(DomainEvent)(event)
    const back = Schema.decodeUnknownSync(DomainEvent)(JSON.parse(JSON.stringify(json)))
    expect(back).toBeInstanceOf(AgentSpawned)
    expect(back).toEqual(event)
  })

  it.effect("the in-memory bus delivers to subscribers that subscribed before publishing", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const bus = yield* EventBuses.makeMemory
        const stream = yield* bus.subscribe
        yield* bus.publish(
          new AgentSpawned({
            eventId: "e" as never,
            timestamp: 1,
            runtimeId: "r" as never,
            agentId: agentId("a"),
            moduleId: moduleId("m"),
            instanceId: "a#1" as never,
            memoryAllocated: 1
          })
        )
        const got = yield* Stream.runCollect(Stream.take(stream, 1))
        expect(got.map((e) => e._tag)).toEqual(["AgentSpawned"])
      })
    )
  )
})

describe("AgentFactory", () => {
  it.effect("creates agents by type through ModuleRegistry and ConfigProvider, and validates custom configs", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const registry = yield* ModuleRegistry
      const factory = yield* AgentFactory
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", { get: { results: ["i32"] } }, { get: () => [7] })
      yield* registry.register(agentType("counter"), m)
      const info = yield* factory.createDefault(agentType("counter"))
      expect(info.agentId).toMatch(/^counter-[0-9a-f]{8}$/)
      expect(info.budget.limit).toBe(2 * MiB)
      expect(yield* runtime.invoke(info.agentId, "get")).toEqual([7])
      const unknown = yield* Effect.flip(factory.createDefault(agentType("nope")))
      expect(unknown._tag).toBe("ModuleNotFound")
      const tooLow = yield* Effect.flip(factory.createCustom(agentId("x"), m, { memoryLimit: 1024 }))
      expect(tooLow.message).toMatch(/memory limit too low/)
      const tooHigh = yield* Effect.flip(factory.createCustom(agentId("x"), m, { memoryLimit: 513 * MiB }))
      expect(tooHigh.message).toMatch(/memory limit too high/)
    }).pipe(
      Effect.provide(
        AgentFactories.layer.pipe(
          Layer.provideMerge(
            Layer.mergeAll(ModuleRegistries.layerMemory, ConfigProviders.layer({ counter: { memoryLimit: 2 * MiB } }))
          ),
          Layer.provideMerge(runtimeLayer(t))
        )
      )
    )
  })
})

describe("Promise facade", () => {
  it("exposes async methods, rejects with the typed error classes, and streams events", async () => {
    const t = makeTestEngine()
    const runtime = await createRuntime({ engine: Layer.succeed(WasmEngine, t.engine), verifier: testVerifier })
    const events: Array<RuntimeEvent> = []
    let spawnedSeen: () => void = () => {}
    const spawned = new Promise<void>((resolve) => (spawnedSeen = resolve))
    const unsubscribe = await runtime.onEvent((e) => {
      events.push(e)
      if (e._tag === "AgentSpawned") spawnedSeen()
    })
    const bytes = await wat(watModule({ get: { results: ["i32"] } }))
    t.behaviours.set(createHash("sha256").update(bytes).digest("hex"), { get: () => [3] })
    const m = await runtime.loadModule(bytes, makeMetadata({ name: "c", version: "1" }))
    await runtime.spawnAgent(agentId("a"), m, { memoryLimit: MiB })
    expect(await runtime.invoke(agentId("a"), "get", [])).toEqual([3])
    const error = await runtime.invoke(agentId("nope"), "get", []).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AgentNotFound)
    expect((error as AgentNotFound)._tag).toBe("AgentNotFound")
    const mismatch = await runtime.invoke(agentId("a"), "get", [1]).catch((e: unknown) => e)
    expect((mismatch as { _tag: string })._tag).toBe("SignatureMismatch")
    expect((await runtime.stats()).agents).toBe(1)
    await spawned // delivered by the event stream, no sleep
    expect(events.slice(0, 2).map((e) => e._tag)).toEqual(["ModuleLoaded", "AgentSpawned"])
    unsubscribe()
    await runtime.dispose()
  })
})

describe("Promise facade with other ports", () => {
  it("uses the repositories given in `ports` instead of the in-memory defaults", async () => {
    const t = makeTestEngine()
    const failing = Layer.succeed(InstanceRepository, {
      ...InstanceRepositories.makeMemory(),
      saveState: () => Effect.fail(new RepositoryError({ operation: "saveState", reason: "custom repository" }))
    })
    const runtime = await createRuntime({
      engine: Layer.succeed(WasmEngine, t.engine),
      verifier: testVerifier,
      ports: failing,
      settings: { persistence: { snapshotAfterCalls: true } }
    })
    const bytes = await wat(watModule({ get: { results: ["i32"] } }))
    t.behaviours.set(createHash("sha256").update(bytes).digest("hex"), { get: () => [3] })
    const m = await runtime.loadModule(bytes, makeMetadata({ name: "c", version: "1" }))
    await runtime.spawnAgent(agentId("a"), m, { memoryLimit: MiB })
    await runtime.invoke(agentId("a"), "get", [])
    expect((await runtime.stats()).snapshotFailures).toBe(1)
    expect((await runtime.agent(agentId("a"))).lastError).toMatch(/custom repository/)
    expect(await runtime.startRestore()).toBeUndefined()
    await runtime.dispose()
  })
})
