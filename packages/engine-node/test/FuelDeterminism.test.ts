/**
 * Differential test of fuel metering (issue 4 "Fuel metering": "the same
 * module with the same fuel stops at the same point on every engine"): one
 * `AgentRuntime` on the native engine (in-process) and one on the Node engine
 * (worker threads), each over the same real signed agents. Fuel is charged by
 * the instrumentation the runtime puts into the module, so where a call runs
 * out must not depend on the engine, the run, or the call path.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  agentId,
  AgentRuntime,
  AgentRuntimes,
  makeMetadata,
  MemoryBudget,
  type AgentRuntimeShape,
  type ModuleId,
  type WasmEngine,
  type WasmValue
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import { NodeEngine } from "../src/index.js"

const engines: ReadonlyArray<readonly [string, Layer.Layer<WasmEngine>]> = [
  ["native", NativeEngine.layer],
  ["node", NodeEngine.layer]
]

/**
 * Runs `f` with a fresh runtime on `engine`. The layer is built in this
 * effect's scope, so the runtime shuts down and the Node engine's workers are
 * terminated when `f` is done.
 */
const withRuntime = <A, E>(engine: Layer.Layer<WasmEngine>, f: (runtime: AgentRuntimeShape) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(
        AgentRuntimes.layerMemory().pipe(
          Layer.provide(Layer.mergeAll(engine, Signing.layer({ trustStore: testOnlyTrustStore() })))
        )
      )
      return yield* f(Context.get(context, AgentRuntime))
    })
  )

const load = (runtime: AgentRuntimeShape, name: "looper" | "text") =>
  runtime.loadModule(readAgent(name), makeMetadata({ name, version: "1.0.0" }))

let spawned = 0
const freshId = (prefix: string) => agentId(`${prefix}-${++spawned}`)

// --- looper: `spin` loops forever, counting iterations in an i64 global ---

const LOOPER_FUEL = [500, 12_345, 100_000, 1_000_003] as const

/**
 * For each fuel: a fresh looper agent, `spin` (must stop with FuelExhausted),
 * `iterations`; then `spin` again (fuel is per invocation, so exactly as many
 * iterations more). Gives `[iterations after one spin, after two]` per fuel.
 */
const looperRun = (runtime: AgentRuntimeShape) =>
  Effect.gen(function* () {
    const looper = yield* load(runtime, "looper")
    const out: Array<readonly [bigint, bigint]> = []
    for (const fuel of LOOPER_FUEL) {
      const id = freshId("looper")
      yield* runtime.spawnAgent(id, looper, { memoryLimit: MemoryBudget.MiB, fuel })
      const stopped = yield* Effect.flip(runtime.invoke(id, "spin"))
      expect(stopped).toMatchObject({ _tag: "FuelExhausted", function: "spin", fuel })
      const [once] = yield* runtime.invoke(id, "iterations")
      yield* Effect.flip(runtime.invoke(id, "spin"))
      const [twice] = yield* runtime.invoke(id, "iterations")
      expect(typeof once).toBe("bigint")
      out.push([once as bigint, twice as bigint])
      yield* runtime.evictAgent(id, "Manual")
    }
    return out
  })

// --- text: real AssemblyScript work (allocator, hashing) over a fixed input ---

/** A fixed ~6 KB text: words of mixed case, digits and punctuation between them. */
const INPUT: Uint8Array = (() => {
  const words = ["alpha", "Beta", "GAMMA", "delta", "epsilon", "Zeta", "eta", "theta", "Iota", "kappa", "lambda", "mu"]
  const parts: Array<string> = []
  for (let i = 0; i < 700; i++)
    parts.push(words[(i * 7 + (i >> 3)) % words.length]! + (i % 5 === 0 ? `${i}, ` : i % 3 === 0 ? ". " : " "))
  return new TextEncoder().encode(parts.join(""))
})()

const TEXT_FUNCTIONS = ["word_count", "unique_words"] as const

/**
 * A fresh text agent with `fuel`: spawn it (the module's start function runs
 * on the same fuel), `alloc` the input, write it, call `fn` on it. Succeeds
 * with `fn`'s results or fails with the first error of any step.
 */
const textRun = (runtime: AgentRuntimeShape, text: ModuleId, fn: string, fuel: number) =>
  Effect.gen(function* () {
    const id = freshId("text")
    const outcome = yield* Effect.result(
      Effect.gen(function* () {
        yield* runtime.spawnAgent(id, text, { memoryLimit: 4 * MemoryBudget.MiB, fuel })
        const [ptr] = yield* runtime.invoke(id, "alloc", [INPUT.length])
        yield* runtime.writeMemory(id, ptr as number, INPUT)
        return yield* runtime.invoke(id, fn, [ptr as number, INPUT.length])
      })
    )
    // not there if the spawn failed
    yield* Effect.ignore(runtime.evictAgent(id, "Manual"))
    return outcome
  })

/** The smallest positive fuel for which `succeeds` holds (binary search; success is monotonic in fuel). */
const minimalFuel = <E>(what: string, succeeds: (fuel: number) => Effect.Effect<boolean, E>) =>
  Effect.gen(function* () {
    let hi = 4_096
    while (!(yield* succeeds(hi))) {
      hi *= 2
      if (hi > 2 ** 40) return yield* Effect.die(new Error(`${what} does not finish with 2^40 fuel`))
    }
    let lo = 0 // lo fails (fuel must be positive), hi succeeds
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (yield* succeeds(mid)) hi = mid
      else lo = mid
    }
    return hi
  })

/** Spawns a text agent with `fuel` (its start function runs on it) and evicts it again. */
const spawnRun = (runtime: AgentRuntimeShape, text: ModuleId, fuel: number) =>
  Effect.gen(function* () {
    const id = freshId("start")
    const outcome = yield* Effect.result(runtime.spawnAgent(id, text, { memoryLimit: 4 * MemoryBudget.MiB, fuel }))
    yield* Effect.ignore(runtime.evictAgent(id, "Manual"))
    return outcome
  })

describe("fuel determinism: the same module with the same fuel stops at the same point on every engine", () => {
  it.effect(
    "looper: spin stops with FuelExhausted after the same number of iterations on both engines and across runs",
    () =>
      Effect.gen(function* () {
        const runs: Array<readonly [string, ReadonlyArray<readonly [bigint, bigint]>]> = []
        for (const [name, engine] of engines) {
          for (let run = 0; run < 2; run++) runs.push([`${name} #${run}`, yield* withRuntime(engine, looperRun)])
        }
        const [, reference] = runs[0]!
        for (const [label, counts] of runs) expect({ label, counts }).toEqual({ label, counts: reference })
        // the counts are real: they grow with the fuel, and a second spin adds exactly as many
        for (const [i, [once, twice]] of reference.entries()) {
          expect(once).toBeGreaterThan(0n)
          expect(twice).toBe(2n * once)
          if (i > 0) expect(once).toBeGreaterThan(reference[i - 1]![0])
        }
        // roughly proportional to the fuel (a loop iteration costs a fixed number of units)
        const perIteration = LOOPER_FUEL.map((fuel, i) => fuel / Number(reference[i]![0]))
        expect(Math.max(...perIteration) / Math.min(...perIteration)).toBeLessThan(1.5)
      }),
    120_000
  )

  it.effect(
    "text: the minimal fuel F found on native succeeds and F - 1 runs out inside the function, on both engines",
    () =>
      Effect.gen(function* () {
        const found = yield* withRuntime(NativeEngine.layer, (runtime) =>
          Effect.gen(function* () {
            const text = yield* load(runtime, "text")
            const out: Array<{ fn: string; fuel: number; results: ReadonlyArray<WasmValue> }> = []
            for (const fn of TEXT_FUNCTIONS) {
              const fuel = yield* minimalFuel(fn, (f) => Effect.map(textRun(runtime, text, fn, f), Result.isSuccess))
              const unmetered = yield* textRun(runtime, text, fn, 2 ** 40)
              out.push({ fn, fuel, results: Result.getOrThrow(unmetered) })
            }
            return out
          })
        )
        for (const { fn, fuel, results } of found) {
          // the input makes both functions do real work: far more than a call's fixed cost
          expect(fuel).toBeGreaterThan(10 * INPUT.length)
          expect((results[0] as number) > 0).toBe(true)
          for (const [name, engine] of engines) {
            for (let run = 0; run < 2; run++) {
              yield* withRuntime(engine, (runtime) =>
                Effect.gen(function* () {
                  const text = yield* load(runtime, "text")
                  const atF = yield* textRun(runtime, text, fn, fuel)
                  expect({ engine: name, fn, results: Result.getOrThrow(atF) }).toEqual({ engine: name, fn, results })
                  const below = yield* textRun(runtime, text, fn, fuel - 1)
                  expect(Result.isFailure(below)).toBe(true)
                  if (Result.isFailure(below)) {
                    // it ran out in `fn` itself (alloc and the write went through)
                    expect({ engine: name, error: below.failure }).toMatchObject({
                      engine: name,
                      error: { _tag: "FuelExhausted", function: fn, fuel: fuel - 1 }
                    })
                  }
                })
              )
            }
          }
        }
      }),
    180_000
  )

  it.effect(
    "text: the module's start function runs out of fuel at the same point on both engines",
    () =>
      Effect.gen(function* () {
        const start = yield* withRuntime(NativeEngine.layer, (runtime) =>
          Effect.flatMap(load(runtime, "text"), (text) =>
            minimalFuel("start", (f) => Effect.map(spawnRun(runtime, text, f), Result.isSuccess))
          )
        )
        expect(start).toBeGreaterThan(1)
        const failures: Array<unknown> = []
        for (const [name, engine] of engines) {
          yield* withRuntime(engine, (runtime) =>
            Effect.gen(function* () {
              const text = yield* load(runtime, "text")
              expect({ engine: name, ok: Result.isSuccess(yield* spawnRun(runtime, text, start)) }).toEqual({
                engine: name,
                ok: true
              })
              const below = yield* spawnRun(runtime, text, start - 1)
              expect({ engine: name, ok: Result.isSuccess(below) }).toEqual({ engine: name, ok: false })
              if (Result.isFailure(below)) failures.push({ ...below.failure })
            })
          )
        }
        // the same typed error on both (today a Trap in "(start)", not FuelExhausted: see the report)
        expect(failures.length).toBe(2)
        expect(failures[0]).toMatchObject({ _tag: expect.any(String) })
        expect(failures[1]).toEqual(failures[0])
      }),
    120_000
  )
})
