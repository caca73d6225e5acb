import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  EventBuses,
  evictionReasons,
  ExecutionAuthorizers,
  InstanceRepositories,
  InstanceRepository,
  keepsSavedState,
  MetricsRepositories,
  ModuleRepositories,
  ModuleRepository,
  RepositoryError,
  WasmEngine,
  type WasmEngineShape
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { config, loadWith, makeTestEngine, testVerifier } from "./support/TestEngine.js"

const fns = { add: { params: ["i32"], results: ["i32"] } }
const behaviour = {
  add: (ctx: { state: Record<string, number> }, [x]: ReadonlyArray<unknown>) => [
    (ctx.state.n = (ctx.state.n ?? 0) + (x as number))
  ]
}

describe("Persistence (crash recovery)", () => {
  it.effect(
    "snapshotAfterCalls makes every acknowledged call durable; restoreOnStart brings agents back on a new runtime",
    () => {
      const t = makeTestEngine()
      const modules = ModuleRepositories.makeMemory()
      const instances = InstanceRepositories.makeMemory()
      const runtimeOn = (persistence: AgentRuntimes.RuntimeSettings["persistence"]) =>
        AgentRuntimes.layer({ id: "rt", persistence }).pipe(
          Layer.provide(
            Layer.mergeAll(
              Layer.succeed(WasmEngine, t.engine),
              testVerifier,
              Layer.succeed(ModuleRepository, modules),
              Layer.succeed(InstanceRepository, instances),
              MetricsRepositories.layerMemory,
              EventBuses.layerMemory,
              ExecutionAuthorizers.layerAllowAll
            )
          )
        )
      return Effect.gen(function* () {
        // first process: two agents, some acknowledged calls, one evicted agent
        yield* Effect.scoped(
          Effect.gen(function* () {
            const ctx = yield* Layer.build(runtimeOn({ snapshotAfterCalls: true }))
            const runtime = ctx.mapUnsafe.get(AgentRuntime.key) as AgentRuntimes.AgentRuntimeShape
            const m = yield* Effect.provideService(loadWith(t, "counter", fns, behaviour), AgentRuntime, runtime)
            yield* runtime.spawnAgent(agentId("a"), m, config())
            yield* runtime.spawnAgent(agentId("b"), m, config(2 * 1024 * 1024, { critical: true }))
            yield* runtime.spawnAgent(agentId("gone"), m, config())
            yield* runtime.invoke(agentId("a"), "add", [40])
            yield* runtime.invoke(agentId("a"), "add", [2])
            yield* runtime.invoke(agentId("b"), "add", [7])
            yield* runtime.invoke(agentId("gone"), "add", [1])
            yield* runtime.evictAgent(agentId("gone"), "Manual")
            expect(Option.isNone(yield* instances.loadState(agentId("gone")))).toBe(true)
          })
        )
        // second process on the same repositories
        yield* Effect.scoped(
          Effect.gen(function* () {
            const ctx = yield* Layer.build(runtimeOn({ restoreOnStart: true }))
            const runtime = ctx.mapUnsafe.get(AgentRuntime.key) as AgentRuntimes.AgentRuntimeShape
            const ids = (yield* runtime.agents).map((a) => a.agentId).sort()
            expect(ids).toEqual(["a", "b"])
            expect((yield* runtime.startRestore)?.restored.slice().sort()).toEqual(["a", "b"])
            expect((yield* runtime.startRestore)?.failed).toEqual([])
            expect((yield* runtime.agent(agentId("a"))).invocationCount).toBe(2) // counters come back too
            expect(yield* runtime.invoke(agentId("a"), "add", [0])).toEqual([42])
            expect(yield* runtime.invoke(agentId("b"), "add", [0])).toEqual([7])
            expect((yield* runtime.agent(agentId("b"))).state).toBe("Critical")
          })
        )
      })
    }
  )

  it.effect("evictions with Shutdown and Migration keep the saved state; every other reason deletes it", () => {
    const t = makeTestEngine()
    const instances = InstanceRepositories.makeMemory()
    return Effect.gen(function* () {
      const ctx = yield* Layer.build(
        AgentRuntimes.layer({ id: "rt", persistence: { snapshotAfterCalls: true } }).pipe(
          Layer.provide(
            Layer.mergeAll(
              Layer.succeed(WasmEngine, t.engine),
              testVerifier,
              ModuleRepositories.layerMemory,
              Layer.succeed(InstanceRepository, instances),
              MetricsRepositories.layerMemory,
              EventBuses.layerMemory,
              ExecutionAuthorizers.layerAllowAll
            )
          )
        )
      )
      const runtime = ctx.mapUnsafe.get(AgentRuntime.key) as AgentRuntimes.AgentRuntimeShape
      const m = yield* Effect.provideService(loadWith(t, "counter", fns, behaviour), AgentRuntime, runtime)
      for (const reason of evictionReasons) {
        const id = agentId(`evicted-${reason}`)
        yield* runtime.spawnAgent(id, m, config())
        yield* runtime.invoke(id, "add", [3])
        expect(Option.isSome(yield* instances.loadState(id))).toBe(true)
        yield* runtime.evictAgent(id, reason)
        const kept = Option.isSome(yield* instances.loadState(id))
        expect([reason, kept]).toEqual([reason, reason === "Shutdown" || reason === "Migration"])
        expect(keepsSavedState(reason)).toBe(kept)
      }
      expect(evictionReasons).toContain("Migration")
    }).pipe(Effect.scoped)
  })

  it.effect("snapshotAfterCalls saves an acknowledged writeMemory too (not only calls)", () => {
    const t = makeTestEngine()
    const base = InstanceRepositories.makeMemory()
    const saved: Array<string> = []
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      const before = saved.length
      yield* runtime.writeMemory(agentId("a"), 0, new Uint8Array([1, 2, 3]))
      expect(saved.slice(before)).toEqual(["a"])
      yield* runtime.readMemory(agentId("a"), 0, 3)
      expect(saved.length).toBe(before + 1) // a read changes nothing: no save
    }).pipe(
      Effect.provide(
        AgentRuntimes.layer({ persistence: { snapshotAfterCalls: true } }).pipe(
          Layer.provide(
            Layer.mergeAll(
              Layer.succeed(WasmEngine, t.engine),
              testVerifier,
              ModuleRepositories.layerMemory,
              Layer.succeed(InstanceRepository, {
                ...base,
                saveState: (id, snapshot) => {
                  saved.push(id)
                  return base.saveState(id, snapshot)
                }
              }),
              MetricsRepositories.layerMemory,
              EventBuses.layerMemory,
              ExecutionAuthorizers.layerAllowAll
            )
          )
        )
      )
    )
  })

  it.effect("a failing snapshot is counted and recorded, never silently dropped", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      expect(yield* runtime.invoke(agentId("a"), "add", [1])).toEqual([1])
      expect((yield* runtime.stats).snapshotFailures).toBe(1)
      expect((yield* runtime.agent(agentId("a"))).lastError).toMatch(/snapshot failed: .*disk full/)
    }).pipe(
      Effect.provide(
        AgentRuntimes.layer({ persistence: { snapshotAfterCalls: true } }).pipe(
          Layer.provide(
            Layer.mergeAll(
              Layer.succeed(WasmEngine, t.engine),
              testVerifier,
              ModuleRepositories.layerMemory,
              Layer.succeed(InstanceRepository, {
                ...InstanceRepositories.makeMemory(),
                saveState: () => Effect.fail(new RepositoryError({ operation: "saveState", reason: "disk full" }))
              }),
              MetricsRepositories.layerMemory,
              EventBuses.layerMemory,
              ExecutionAuthorizers.layerAllowAll
            )
          )
        )
      )
    )
  })

  it.effect(
    "saves after calls are deltas where engine and repository offer them; whole when either cannot vouch; a failed save restarts",
    () => {
      const t = makeTestEngine()
      const base = InstanceRepositories.makeMemory()
      const log: Array<string> = []
      // what the engine's next `snapshotChanges` answers, and the repository's next `savePages`
      const engineSays: Array<"none" | "delta"> = []
      const repoSays: Array<boolean | "fail"> = []
      const engine: WasmEngineShape = {
        ...t.engine,
        instantiate: (compiled, options) =>
          Effect.map(t.engine.instantiate(compiled, options), (instance) => ({
            ...instance,
            snapshot: Effect.tap(instance.snapshot, () => Effect.sync(() => void log.push("snapshot"))),
            snapshotChanges: (restart: boolean) =>
              Effect.flatMap(instance.snapshot, (s) =>
                Effect.sync(() => {
                  log.push(`changes(${restart})`)
                  return engineSays.shift() === "delta"
                    ? { memoryBytes: s.memoryBytes, pages: [], zeroed: [3], globals: s.globals }
                    : undefined
                })
              )
          }))
      }
      const repository: InstanceRepositories.InstanceRepositoryShape = {
        ...base,
        saveState: (id, snapshot) => {
          log.push(`saveState ${snapshot.invocationCount}`)
          return base.saveState(id, snapshot)
        },
        savePages: (id, changes) =>
          Effect.suspend(() => {
            log.push(`savePages ${changes.snapshot.invocationCount} zeroed ${changes.zeroed.join(",")}`)
            const answer = repoSays.shift() ?? true
            if (answer === "fail")
              return Effect.fail(new RepositoryError({ operation: "savePages", reason: "disk full" }))
            return answer
              ? Effect.as(base.saveState(id, changes.snapshot), true) // this test's store keeps the header only
              : Effect.succeed(false)
          })
      }
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "counter", fns, behaviour)
        yield* runtime.spawnAgent(agentId("a"), m, config())
        const step = (engineAnswer: "none" | "delta", repoAnswer?: boolean | "fail") =>
          Effect.gen(function* () {
            engineSays.push(engineAnswer)
            if (repoAnswer !== undefined) repoSays.push(repoAnswer)
            log.length = 0
            yield* runtime.invoke(agentId("a"), "add", [1])
            return log.slice()
          })
        // the engine has no base yet: a whole snapshot right after
        expect(yield* step("none")).toEqual(["changes(false)", "snapshot", "saveState 1"])
        // a delta the repository applies: nothing else
        expect(yield* step("delta", true)).toEqual(["changes(false)", "savePages 2 zeroed 3"])
        // the repository has no base for it: the whole snapshot
        expect(yield* step("delta", false)).toEqual([
          "changes(false)",
          "savePages 3 zeroed 3",
          "snapshot",
          "saveState 3"
        ])
        // a failed save: counted, and the next one asks the engine to restart (then a whole save)
        expect(yield* step("delta", "fail")).toEqual(["changes(false)", "savePages 4 zeroed 3"])
        expect((yield* runtime.stats).snapshotFailures).toBe(1)
        expect(yield* step("none")).toEqual(["changes(true)", "snapshot", "saveState 5"])
        expect(yield* step("delta", true)).toEqual(["changes(false)", "savePages 6 zeroed 3"])
        expect(Option.getOrThrow(yield* base.loadState(agentId("a"))).invocationCount).toBe(6)
      }).pipe(
        Effect.provide(
          AgentRuntimes.layer({ persistence: { snapshotAfterCalls: true } }).pipe(
            Layer.provide(
              Layer.mergeAll(
                Layer.succeed(WasmEngine, engine),
                testVerifier,
                ModuleRepositories.layerMemory,
                Layer.succeed(InstanceRepository, repository),
                MetricsRepositories.layerMemory,
                EventBuses.layerMemory,
                ExecutionAuthorizers.layerAllowAll
              )
            )
          )
        )
      )
    }
  )

  it.effect("a repository without savePages gets whole snapshots; the engine's changes are not read", () => {
    const t = makeTestEngine()
    const log: Array<string> = []
    const engine: WasmEngineShape = {
      ...t.engine,
      instantiate: (compiled, options) =>
        Effect.map(t.engine.instantiate(compiled, options), (instance) => ({
          ...instance,
          snapshotChanges: () => Effect.sync(() => void log.push("changes"))
        }))
    }
    const base = InstanceRepositories.makeMemory()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      yield* runtime.invoke(agentId("a"), "add", [1])
      yield* runtime.invoke(agentId("a"), "add", [1])
      expect(log).toEqual([])
      expect(Option.getOrThrow(yield* base.loadState(agentId("a"))).invocationCount).toBe(2)
    }).pipe(
      Effect.provide(
        AgentRuntimes.layer({ persistence: { snapshotAfterCalls: true } }).pipe(
          Layer.provide(
            Layer.mergeAll(
              Layer.succeed(WasmEngine, engine),
              testVerifier,
              ModuleRepositories.layerMemory,
              Layer.succeed(InstanceRepository, base),
              MetricsRepositories.layerMemory,
              EventBuses.layerMemory,
              ExecutionAuthorizers.layerAllowAll
            )
          )
        )
      )
    )
  })
})
