import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  EventBuses,
  ExecutionAuthorizer,
  type ExecutionRequest,
  InstanceRepositories,
  MetricsRepositories,
  ModuleRepositories,
  WasmEngine
} from "../../src/index.js"
import type { AgentConfig } from "../../src/AgentConfig.js"
import type { ExecutionAuthorizerShape } from "../../src/ExecutionAuthorizer.js"
import { InvalidConfig, Unauthorized } from "../../src/RuntimeError.js"
import type { RuntimeState } from "../../src/internal/RuntimeState.js"
import { withDefaultFuel } from "../../src/internal/Spawning.js"
import { config, loadWith, MiB, makeTestEngine, type TestEngine, testVerifierFor } from "../support/TestEngine.js"

/** The parts of the state `withDefaultFuel` reads: an engine that meters fuel and cannot preempt (the native engine). */
const stateWith = (defaultFuel: number | false) =>
  ({
    engine: {
      platform: "Native",
      capabilities: { preemptiveTimeout: false, fuel: true, runtimeCompile: true }
    },
    settings: { limits: { defaultFuel } }
  }) as unknown as RuntimeState

describe("withDefaultFuel", () => {
  it("adds the default fuel as { ...config, fuel } would: same keys, same order, same values; the input is untouched", () => {
    const configs: Array<AgentConfig> = [
      { memoryLimit: 1_048_576 },
      { memoryLimit: 2_097_152, autoStart: false, critical: true },
      // a `fuel` key present but undefined keeps its place
      { memoryLimit: 1_048_576, fuel: undefined, autoStart: true } as AgentConfig
    ]
    for (const config of configs) {
      const before = JSON.stringify(Object.entries(config))
      const got = withDefaultFuel(stateWith(5_000), config)
      const expected = { ...config, fuel: 5_000 }
      expect(got).not.toBe(config)
      expect(Object.entries(got as AgentConfig)).toEqual(Object.entries(expected))
      expect(JSON.stringify(Object.entries(config))).toBe(before)
    }
  })

  it("keeps a config that bounds its calls, and refuses when the default is disabled", () => {
    const bounded: AgentConfig = { memoryLimit: 1_048_576, fuel: 10 }
    expect(withDefaultFuel(stateWith(5_000), bounded)).toBe(bounded)
    expect(withDefaultFuel(stateWith(false), { memoryLimit: 1_048_576 })).toBeInstanceOf(InvalidConfig)
  })
})

describe("spawnAgent and the authorizer", () => {
  /** A runtime on the test engine with `authorizer` instead of the allow-all default. */
  const runtimeWith = (t: TestEngine, authorizer: ExecutionAuthorizerShape) =>
    AgentRuntimes.layer({ id: "rt-auth" }).pipe(
      Layer.provideMerge(
        Layer.mergeAll(
          ModuleRepositories.layerMemory,
          InstanceRepositories.layerMemory,
          MetricsRepositories.layerMemory,
          EventBuses.layerMemory,
          Layer.succeed(ExecutionAuthorizer, authorizer),
          Layer.succeed(WasmEngine, t.engine),
          testVerifierFor(t)
        )
      )
    )

  /** Spawns "a" and reports the outcome, the agents, the reserved memory and the authorizer's requests. */
  const spawnWith = (decide: (request: ExecutionRequest) => Effect.Effect<void, Unauthorized>) => {
    const t = makeTestEngine()
    const requests: Array<string> = []
    const authorizer: ExecutionAuthorizerShape = {
      authorize: (request) => {
        requests.push(`${request.action} ${request.agentId} ${request.subject}`)
        return decide(request)
      },
      checksInvocations: false
    }
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "m", { ping: {} }, {})
      const exit = yield* Effect.exit(runtime.spawnAgent(agentId("a"), m, config()))
      const stats = yield* runtime.stats
      return {
        outcome: exit._tag === "Success" ? exit.value.state : (exit.cause.toJSON() as unknown),
        agents: (yield* runtime.agents).map((a) => a.agentId),
        reserved: stats.memory.reserved,
        requests
      }
    }).pipe(Effect.provide(runtimeWith(t, authorizer)))
  }

  it.effect(
    "allowing with Effect.void (no step) and with an effect (its step runs) spawn alike; a refusal claims nothing",
    () =>
      Effect.gen(function* () {
        const plain = yield* spawnWith(() => Effect.void)
        let ran = 0
        const effectful = yield* spawnWith(() => Effect.sync(() => void ran++))
        expect(plain).toEqual({ outcome: "Running", agents: ["a"], reserved: MiB, requests: ["spawn a m"] })
        expect(effectful).toEqual(plain)
        expect(ran).toBe(1)
        const refused = yield* spawnWith((r) =>
          Effect.fail(new Unauthorized({ action: r.action, subject: r.subject, reason: "not on the list" }))
        )
        expect(JSON.stringify(refused.outcome)).toMatch(/Unauthorized/)
        expect(refused.agents).toEqual([])
        expect(refused.reserved).toBe(0)
        expect(refused.requests).toEqual(["spawn a m"])
      })
  )
})
