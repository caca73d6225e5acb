/**
 * Recovery after a trap (issue 12 item 7) on the scriptable test engine:
 * what the conformance suite cannot make a real guest do — a replacement
 * that fails, a `_health_check` that traps after writing, a snapshot racing
 * a trapped call — and the runtime-wide `onTrap` setting.
 */
import { AgentRuntime, agentId, InstanceRepository, type RuntimeEvent, Trap } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { collecting, config, loadWith, makeTestEngine, runtimeLayer } from "./support/TestEngine.js"

const fns = { _initialize: {}, boom: {}, get: { results: ["i32"] }, bump: { results: ["i32"] } }

/** `_initialize` works `inits` times, then traps; `boom` traps after writing; `bump` / `get` count. */
const behaviours = (inits: number) => {
  let initialized = 0
  return {
    _initialize: () =>
      ++initialized > inits ? Effect.fail(new Trap({ function: "_initialize", reason: "broken" })) : [],
    bump: (ctx: { state: Record<string, number> }) => [(ctx.state.n = (ctx.state.n ?? 0) + 1)],
    get: (ctx: { state: Record<string, number> }) => [ctx.state.n ?? 0],
    boom: (ctx: { state: Record<string, number> }) => {
      ctx.state.n = 99
      return Effect.fail(new Trap({ function: "boom", reason: "unreachable" }))
    }
  }
}

describe("recovery after a trap", () => {
  it.effect(
    "an agent whose replacement fails (its _initialize traps now) goes Failed and is evicted with HealthFailure",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "fragile", fns, behaviours(1))
        const [, events] = yield* collecting(
          Effect.gen(function* () {
            yield* runtime.spawnAgent(agentId("f"), m, config())
            expect(yield* runtime.invoke(agentId("f"), "bump", [])).toEqual([1])
            expect(yield* Effect.flip(runtime.invoke(agentId("f"), "boom", []))).toBeInstanceOf(Trap)
          })
        )
        expect(events.filter((e) => e._tag === "AgentRecovered")).toHaveLength(0)
        const changes = events.flatMap((e) => (e._tag === "AgentStateChanged" ? [[e.from, e.to]] : []))
        expect(changes).toContainEqual(["Running", "Failed"])
        expect(events.flatMap((e) => (e._tag === "AgentEvicted" ? [[e.agentId, e.reason]] : []))).toEqual([
          ["f", "HealthFailure"]
        ])
        expect(yield* runtime.agents).toHaveLength(0)
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect(
    'RuntimeSettings.onTrap "keep" keeps the instance as the trap left it; an agent\'s own onTrap overrides it',
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "kept", fns, behaviours(10))
        const [, events] = yield* collecting(
          Effect.gen(function* () {
            yield* runtime.spawnAgent(agentId("k"), m, config())
            yield* runtime.spawnAgent(agentId("r"), m, config(undefined, { onTrap: "restore" }))
            for (const id of ["k", "r"]) {
              yield* runtime.invoke(agentId(id), "bump", [])
              yield* Effect.flip(runtime.invoke(agentId(id), "boom", []))
            }
            expect(yield* runtime.invoke(agentId("k"), "get", [])).toEqual([99])
            expect(yield* runtime.invoke(agentId("r"), "get", [])).toEqual([0])
            expect((yield* runtime.agent(agentId("k"))).errorCount).toBe(1)
            expect((yield* runtime.agent(agentId("r"))).errorCount).toBe(1)
          })
        )
        expect(events.flatMap((e) => (e._tag === "AgentRecovered" ? [[e.agentId, e.from]] : []))).toEqual([
          ["r", "Fresh"]
        ])
      }).pipe(Effect.provide(runtimeLayer(t, { onTrap: "keep" })))
    }
  )

  it.effect('onTrap must be "restore" or "keep" (InvalidConfig)', () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "cfg", fns, behaviours(10))
      const e = yield* Effect.flip(runtime.spawnAgent(agentId("c"), m, config(undefined, { onTrap: "reset" as never })))
      expect(e._tag).toBe("InvalidConfig")
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})

/** `_health_check` writes (n = 99) then traps, or reports healthy; `bump` / `get` count; `block` waits on `gate` then writes and traps. */
const probing = (gate?: Deferred.Deferred<void>) => ({
  _initialize: () => [],
  bump: (ctx: { state: Record<string, number> }) => [(ctx.state.n = (ctx.state.n ?? 0) + 1)],
  get: (ctx: { state: Record<string, number> }) => [ctx.state.n ?? 0],
  _health_check: (ctx: { state: Record<string, number> }) => {
    if (ctx.state.sick !== 1) return [0]
    ctx.state.n = 99
    return Effect.fail(new Trap({ function: "_health_check", reason: "unreachable" }))
  },
  sicken: (ctx: { state: Record<string, number> }) => ((ctx.state.sick = 1), []),
  block: (ctx: { state: Record<string, number> }) =>
    Effect.andThen(gate === undefined ? Effect.void : Deferred.await(gate), () => {
      ctx.state.n = 99
      return Effect.fail(new Trap({ function: "block", reason: "unreachable" }))
    })
})
const probingFns = {
  _initialize: {},
  _health_check: { results: ["i32"] },
  bump: { results: ["i32"] },
  get: { results: ["i32"] },
  sicken: {},
  block: {}
}
const recoveredOf = (events: ReadonlyArray<RuntimeEvent>) =>
  events.flatMap((e) => (e._tag === "AgentRecovered" ? [[e.agentId, e.from, e.cause]] : []))

describe("recovery gaps (issue 12 item 7): a trapped _health_check, a snapshot racing a trapped call", () => {
  it.effect(
    'a _health_check that traps replaces the instance (onTrap "restore", AgentRecovered); the failed probe counts',
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "probe", probingFns, probing())
        const [checks, events] = yield* collecting(
          Effect.gen(function* () {
            yield* runtime.spawnAgent(agentId("p"), m, config())
            expect(yield* runtime.invoke(agentId("p"), "bump", [])).toEqual([1])
            yield* runtime.invoke(agentId("p"), "sicken", [])
            return yield* runtime.checkHealth
          })
        )
        expect(checks.map((c) => [c.agentId, c.details.responseOk])).toEqual([["p", false]])
        expect(recoveredOf(events)).toEqual([["p", "Fresh", expect.stringMatching(/unreachable/)]])
        // the probe's partial write (n = 99) is gone with the trapped instance: a fresh one, not sick
        expect(yield* runtime.invoke(agentId("p"), "get", [])).toEqual([0])
        expect((yield* runtime.checkHealth).map((c) => c.details.responseOk)).toEqual([true])
        expect((yield* runtime.agent(agentId("p"))).state).toBe("Running")
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect('with onTrap "keep" a trapped _health_check leaves the instance as it is (no AgentRecovered)', () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "probe-keep", probingFns, probing())
      const [, events] = yield* collecting(
        Effect.gen(function* () {
          yield* runtime.spawnAgent(agentId("k"), m, config(undefined, { onTrap: "keep" }))
          yield* runtime.invoke(agentId("k"), "sicken", [])
          yield* runtime.checkHealth
        })
      )
      expect(recoveredOf(events)).toEqual([])
      expect(yield* runtime.invoke(agentId("k"), "get", [])).toEqual([99])
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect(
    "a snapshot after a trapped _health_check saves the replacement's state, never the probe's partial writes",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "probe-snap", probingFns, probing())
        yield* runtime.spawnAgent(agentId("s"), m, config())
        expect(yield* runtime.invoke(agentId("s"), "bump", [])).toEqual([1])
        yield* runtime.snapshot(agentId("s")) // n = 1
        yield* runtime.invoke(agentId("s"), "sicken", [])
        yield* runtime.checkHealth // traps after writing n = 99: restored from the snapshot (n = 1)
        const snap = yield* runtime.snapshot(agentId("s"))
        expect(snap.state.globals.n).toBe(1)
        expect(snap.state.globals.sick).toBeUndefined()
        expect(yield* runtime.invoke(agentId("s"), "get", [])).toEqual([1])
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect(
    "a snapshot racing a trapped call waits for the recovery and never persists the trapped call's writes",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const gate = yield* Deferred.make<void>()
        const m = yield* loadWith(t, "race", probingFns, probing(gate))
        const [, events] = yield* collecting(
          Effect.gen(function* () {
            yield* runtime.spawnAgent(agentId("r"), m, config())
            expect(yield* runtime.invoke(agentId("r"), "bump", [])).toEqual([1])
            const call = yield* Effect.forkChild(Effect.flip(runtime.invoke(agentId("r"), "block", [])))
            yield* Effect.yieldNow
            const snap = yield* Effect.forkChild(runtime.snapshot(agentId("r")))
            yield* Effect.yieldNow
            yield* Deferred.succeed(gate, undefined)
            expect(yield* Fiber.join(call)).toBeInstanceOf(Trap)
            const saved = yield* Fiber.join(snap)
            // never n = 99: the snapshot is of the fresh replacement (no earlier snapshot to restore from)
            expect(saved.state.globals.n).toBeUndefined()
            const repo = yield* InstanceRepository
            const stored = yield* repo.loadState(agentId("r"))
            expect(Option.map(stored, (s) => s.state.globals.n)).toEqual(Option.some(undefined))
          })
        )
        expect(recoveredOf(events).map(([id, from]) => [id, from])).toEqual([["r", "Fresh"]])
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )
})

describe("recovery and interruption", () => {
  it.effect(
    "a caller interrupted while its trapped call replaces the instance leaves the agent recovered, never without an instance",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "interrupted", fns, behaviours(10))
        const [, events] = yield* collecting(
          Effect.gen(function* () {
            yield* runtime.spawnAgent(agentId("w"), m, config())
            expect(yield* runtime.invoke(agentId("w"), "bump", [])).toEqual([1])
            // the trapped call replaces its instance before it fails; hold that instantiate until the caller is interrupted
            const entered = yield* Deferred.make<void>()
            const gate = yield* Deferred.make<void>()
            const engine = t.engine as { -readonly [K in keyof typeof t.engine]: (typeof t.engine)[K] }
            const instantiate = engine.instantiate
            engine.instantiate = (compiled, options) =>
              Effect.andThen(
                Effect.andThen(Deferred.succeed(entered, undefined), Deferred.await(gate)),
                instantiate(compiled, options)
              )
            const call = yield* Effect.forkChild(runtime.invoke(agentId("w"), "boom", []))
            yield* Deferred.await(entered)
            const interrupting = yield* Effect.forkChild(Fiber.interrupt(call))
            yield* Effect.yieldNow
            yield* Deferred.succeed(gate, undefined)
            yield* Fiber.join(interrupting)
            engine.instantiate = instantiate
            // the replacement was attached: the agent answers, fresh (the trapped call's writes are gone)
            expect(yield* runtime.invoke(agentId("w"), "get", [])).toEqual([0])
            expect((yield* runtime.agent(agentId("w"))).state).toBe("Running")
          })
        )
        expect(recoveredOf(events).map(([id, from]) => [id, from])).toEqual([["w", "Fresh"]])
      }).pipe(Effect.provide(runtimeLayer(t)))
    },
    10_000
  )
})
