/**
 * Property tests of the Runtime context (issue 12): fast-check model-based
 * runs (`fc.commands`, `fc.asyncModelRun`) of random sequences of load /
 * spawn / invoke / pause / resume / evict / pressure / health / passivate /
 * snapshot / restore against a real `AgentRuntime` over the engine under
 * test and the real signed fixture agents. After every step the spec's five
 * invariants ("Invariants" of the Runtime bounded context) and the pool's
 * accounting are checked: Σ reservations == pool reserved, used ≤ total,
 * one instance per agent id, legal states only, every agent that appears or
 * vanishes has the event that says why, counter values isolated and exact,
 * tampered modules refused.
 *
 * `properties(name, engineLayer, { operations })` registers one test that
 * runs seeds until at least `operations` steps ran (or `timeBudgetMs`
 * passed, which fails the test) and prints the base seed and the count.
 * Reproduce a run with `PROPERTY_SEED=<seed>` in the environment.
 *
 * @example
 * ```ts
 * // packages/engine-native/test/Properties.test.ts
 * import { properties } from "@agent-runtime/conformance/properties"
 * import { NativeEngine } from "../src/index.js"
 * properties("native", NativeEngine.layer, { operations: 8_000 })
 * ```
 *
 * @since 0.1.0
 */
import { AgentRuntime, AgentRuntimes, type RuntimeEvent, type SettingsInput, WasmEngine } from "@agent-runtime/domain"
import { expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import fc from "fast-check"
import { type AgentName, defaultFixtures, type FixtureLoader } from "./Fixtures.js"
import { verifierLayer } from "./Harness.js"
import * as M from "./internal/RuntimeModel.js"

/** How many operations, and how long they may take. */
export interface PropertyOptions {
  /** Operations (steps) to run in total, over as many seeds as it takes (default 5 000). */
  readonly operations?: number | undefined
  /** Longest command sequence of one run (default 60). */
  readonly maxCommands?: number | undefined
  /** Real time the test may take, ms; running out fails the test (default 80 000). */
  readonly timeBudgetMs?: number | undefined
  /** The base seed (default: `PROPERTY_SEED` from the environment, else random). */
  readonly seed?: number | undefined
  readonly fixtures?: FixtureLoader | undefined
}

/** Pool of the property runtime: 48 MiB, so random spawns of 1–8 MiB reach the limit and the thresholds. */
const TOTAL = 48 * 1_048_576

const settings: SettingsInput = {
  id: "rt-properties",
  pool: { totalMemory: TOTAL },
  autoPressure: false,
  gc: { passivateIdleMs: 1 }
}

const envSeed = (): number | undefined => {
  const v = (globalThis as { readonly process?: { readonly env?: Record<string, string | undefined> } }).process?.env
    ?.PROPERTY_SEED
  return v === undefined || v === "" ? undefined : Number(v)
}

/** Real time, ms (the default Clock). */
const now = (): number => Effect.runSync(Clock.currentTimeMillis)

const id = fc.constantFrom(...M.ids)

/** The command arbitraries (weights by repetition). */
const commandArbs = (): Array<fc.Arbitrary<fc.AsyncCommand<M.Model, M.Real>>> => {
  const cmd = <A>(arb: fc.Arbitrary<A>, show: (a: A) => string, body: (m: M.Model, r: M.Real, a: A) => Promise<void>) =>
    arb.map(
      (a): fc.AsyncCommand<M.Model, M.Real> => ({
        check: () => true,
        run: (m, r) => body(m, r, a),
        toString: () => show(a)
      })
    )
  const spawn = cmd(
    fc.tuple(id, fc.constantFrom(...M.kinds), fc.integer({ min: 1, max: 8 })),
    ([i, k, l]) => `spawn(${i}, ${k}, ${l} MiB)`,
    (m, r, [i, k, l]) => M.spawn(m, r, i, k, l)
  )
  const invoke = cmd(
    fc.tuple(id, fc.integer({ min: 0, max: 50 })),
    ([i, n]) => `invoke(${i}, ${n})`,
    (m, r, [i, n]) => M.invoke(m, r, i, n)
  )
  return [
    spawn,
    spawn,
    invoke,
    invoke,
    invoke,
    invoke,
    cmd(
      id,
      (i) => `pause(${i})`,
      (m, r, i) => M.lifecycle(m, r, i, "pause")
    ),
    cmd(
      id,
      (i) => `resume(${i})`,
      (m, r, i) => M.lifecycle(m, r, i, "resume")
    ),
    cmd(
      id,
      (i) => `evict(${i})`,
      (m, r, i) => M.evict(m, r, i)
    ),
    cmd(
      fc.constant(0),
      () => "pressure",
      (m, r) => M.pressure(m, r)
    ),
    cmd(
      fc.constant(0),
      () => "health",
      (m, r) => M.health(m, r)
    ),
    cmd(
      fc.constant(0),
      () => "passivate",
      (m, r) => (r.caps.snapshots ? M.passivate(m, r) : M.health(m, r))
    ),
    cmd(
      id,
      (i) => `snapshot(${i})`,
      (m, r, i) => (r.caps.snapshots ? M.snapshot(m, r, i) : M.health(m, r))
    ),
    cmd(
      id,
      (i) => `restore(${i})`,
      (m, r, i) => (r.caps.snapshots ? M.restore(m, r, i) : M.health(m, r))
    ),
    cmd(
      fc.nat(),
      (n) => `loadTampered(${n})`,
      (m, r, n) => M.loadTampered(m, r, n)
    )
  ]
}

const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

/** One fresh runtime over the shared engine; `close` shuts it down. */
const makeReal = async (
  engine: Context.Context<WasmEngine>,
  loader: FixtureLoader,
  counter: { ops: number }
): Promise<{ readonly real: M.Real; readonly close: () => Promise<void> }> => {
  const scope = Scope.makeUnsafe()
  const layer = AgentRuntimes.layerMemory(settings).pipe(
    Layer.provide(Layer.mergeAll(Layer.succeedContext(engine), verifierLayer()))
  )
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const rt = Context.get(context, AgentRuntime)
  const events: Array<RuntimeEvent> = []
  await Effect.runPromise(
    Effect.gen(function* () {
      const stream = yield* rt.events
      yield* Effect.forkIn(
        Stream.runForEach(stream, (e) => Effect.sync(() => void events.push(e))),
        scope
      )
    }).pipe(Scope.provide(scope))
  )
  const cache = new Map<AgentName, Uint8Array>()
  const real: M.Real = {
    rt,
    caps: Context.get(engine, WasmEngine).capabilities,
    totalMemory: TOTAL,
    failureThreshold: rt.settings.health.failureThreshold,
    modules: new Map(),
    bytes: async (name) => {
      let b = cache.get(name)
      if (b === undefined) cache.set(name, (b = new Uint8Array(await loader.bytes(name))))
      return new Uint8Array(b)
    },
    events,
    seen: 0,
    counter,
    run: (effect) => Effect.runPromise(M.outcome(effect)),
    settle: () => Effect.runPromise(settle)
  }
  return {
    real,
    close: async () => {
      await Effect.runPromise(rt.shutdown)
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
}

/**
 * Registers the property test of `name` on `engineLayer` (built once, shared
 * by every run; each run gets a fresh runtime). Prints the seed and the
 * number of operations; on failure fast-check prints the shrunk command
 * sequence and the invariant it broke.
 */
export const properties = (name: string, engineLayer: Layer.Layer<WasmEngine>, options: PropertyOptions = {}): void => {
  const operations = options.operations ?? 5_000
  const budget = options.timeBudgetMs ?? 80_000
  it(
    `${name}: random operation sequences keep the five invariants and the pool's accounting (≥ ${operations} ops)`,
    async () => {
      const seed = options.seed ?? envSeed() ?? (now() ^ 0x5eed) >>> 0
      const counter = { ops: 0 }
      const engineScope = Scope.makeUnsafe()
      const engine = await Effect.runPromise(Layer.buildWithScope(engineLayer, engineScope))
      const started = now()
      let runs = 0
      try {
        for (let round = 0; counter.ops < operations; round++) {
          if (now() - started > budget) {
            throw new Error(
              `time budget of ${budget} ms spent after ${counter.ops} of ${operations} operations (seed ${seed})`
            )
          }
          await fc.assert(
            fc.asyncProperty(
              fc.commands(commandArbs(), { maxCommands: options.maxCommands ?? 60, size: "max" }),
              async (cmds) => {
                runs++
                const { real, close } = await makeReal(engine, options.fixtures ?? defaultFixtures, counter)
                try {
                  await fc.asyncModelRun(
                    () => ({ model: { agents: new Map(), gone: new Map(), modules: 0 }, real }),
                    cmds
                  )
                } finally {
                  await close()
                }
              }
            ),
            { seed: (seed + round) | 0, numRuns: 10, endOnFailure: false }
          )
        }
      } finally {
        await Effect.runPromise(Scope.close(engineScope, Exit.void))
        console.log(
          `properties ${name}: seed ${seed}, ${counter.ops} operations in ${runs} runs, ${now() - started} ms`
        )
      }
      expect(counter.ops).toBeGreaterThanOrEqual(operations)
    },
    budget + 30_000
  )
}
