/**
 * One thread setting (issue 16 item 1): `NodeEngine.layer` sizes its worker
 * pool from the program's `ResourcePoolConfig.maxThreads`, the runtime's pool
 * allows that many threads and takes them from the engine at start, and an
 * engine given more threads than the pool allows is refused. Real workers
 * (lazily started: only those with agents run).
 */
import { readAgent } from "@agent-runtime/agents"
import {
  agentId,
  AgentRuntime,
  AgentRuntimes,
  layerPoolConfig,
  makeMetadata,
  MemoryBudget,
  type WasmEngine
} from "@agent-runtime/domain"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { NodeEngine } from "../src/index.js"

/** A runtime on `engine` with the in-memory ports and the test trust store, `config` provided around both. */
const runtimeOn = (engine: Layer.Layer<WasmEngine | NodeEngine.NodeEngine>, config: Layer.Layer<never>) =>
  AgentRuntimes.layerMemory().pipe(
    Layer.provideMerge(Layer.mergeAll(engine, Signing.layer({ trustStore: testOnlyTrustStore() }))),
    Layer.provide(config)
  )

describe("NodeEngine threads: one setting with the runtime's pool", () => {
  it.effect(
    "the worker pool has ResourcePoolConfig.maxThreads workers, taken from the runtime's pool",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(runtimeOn(NodeEngine.layer, layerPoolConfig({ maxThreads: 3 })))
          const runtime = Context.get(context, AgentRuntime)
          const engine = Context.get(context, NodeEngine.NodeEngine)
          expect(engine.threads).toBe(3)
          expect(engine.stats().workers).toHaveLength(3)
          expect((yield* runtime.stats).threads).toEqual({ max: 3, inUse: 3 })
          // five agents spread over the three workers: never a fourth thread
          const counter = yield* runtime.loadModule(
            readAgent("counter"),
            makeMetadata({ name: "counter", version: "1.0.0" })
          )
          for (let i = 0; i < 5; i++) {
            yield* runtime.spawnAgent(agentId(`counter-${i}`), counter, { memoryLimit: 4 * MemoryBudget.MiB })
            expect(yield* runtime.invoke(agentId(`counter-${i}`), "add", [i])).toEqual([i])
          }
          const workers = engine.stats().workers
          expect(workers).toHaveLength(3)
          expect(workers.filter((w) => w.running)).toHaveLength(3)
          expect(workers.map((w) => w.agents)).toEqual([2, 2, 1])
        })
      ),
    60_000
  )

  it.effect("an explicit maxThreads above the pool's fails the runtime layer with ResourceExhausted threads", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Layer.build(runtimeOn(NodeEngine.layerWith({ maxThreads: 5 }), layerPoolConfig({ maxThreads: 2 })))
        )
        expect(error).toMatchObject({ _tag: "ResourceExhausted", resource: "threads", requested: 5, available: 2 })
      })
    )
  )

  it.effect("without a provided setting both sides take the default (4)", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(runtimeOn(NodeEngine.layer, Layer.empty))
        expect(Context.get(context, NodeEngine.NodeEngine).stats().workers).toHaveLength(4)
        expect((yield* Context.get(context, AgentRuntime).stats).threads).toEqual({ max: 4, inUse: 4 })
      })
    )
  )
})
