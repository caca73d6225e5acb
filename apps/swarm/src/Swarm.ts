/**
 * The swarm: hundreds of real, signed WebAssembly agents taken through the
 * whole lifecycle of the Runtime context on one `AgentRuntime` with the
 * embedded defaults (in-memory repositories and bus) — or, with
 * `persistence`, on durable repositories (SQLite) where every call's state
 * is saved before it returns and a later run can `resume` on the saved
 * agents (crash recovery) — as one Effect program.
 *
 * What a run does (`runSwarm`), one file per part:
 * 0. **Plan** (`Plan.ts`): the agents (default 593: mostly `counter`, `text`
 *    and `lifecycle`; a few dozen `leaky` agents whose `memoryReservation` is
 *    far below their `memoryLimit`, so the pool over-commits; a few dozen
 *    `flaky` agents configured to start failing `_health_check`; a few
 *    `trapper` agents; a handful spawned `critical`), the pool (every
 *    reservation fits at about 62 % usage) and the schedule of the rounds.
 * 1. **Restore** (`Persistence.ts`, persistent runs): the saved agents come
 *    back; a resumed run continues its workload at the round the stopped one
 *    was in and, given its ack log (`AckLog.ts`), reports how many
 *    acknowledged calls' states came back.
 * 2. **Load, spawn** (`Setup.ts`): the signed module of every agent type,
 *    loaded twice (one compile, then a cache hit; a tampered module is
 *    refused with `InvalidSignature` and its type skipped); the planned
 *    agents spawned — or, resumed, the restored ones taken over.
 * 3. **Rounds** (`Rounds.ts`, tasks in `Tasks.ts`): counters count, text
 *    agents process sentences through linear memory (checked against
 *    JavaScript), trappers trap (counted, nothing crashes), lifecycle agents
 *    break their health and get recovered, flaky agents fail until the health
 *    checker evicts them (`HealthFailure`), some agents are paused and
 *    resumed, one is evicted by hand, and in the last rounds the leaky agents
 *    grow the pool past 70 %, 85 % and 95 % so pressure eviction happens.
 *    After each round the supervisor's control loop: `handleMemoryPressure`,
 *    then `checkHealth`.
 * 4. **GC, shutdown, report** (`Finish.ts`, `Report.ts`): eviction, pressure
 *    and health counts come from the runtime's event stream (`EventTally.ts`),
 *    the rest from the run's ledger (`Ledger.ts`).
 *
 * @since 0.1.0
 */
import { readAgent } from "@agent-runtime/agents"
import {
  type AgentId,
  AgentRuntime,
  type AgentRuntimeShape,
  AgentRuntimes,
  EventBuses,
  type EvictionReason,
  ExecutionAuthorizers,
  type ModuleVerifier,
  type RepositoryError,
  WasmEngine,
  type WasmEngineShape
} from "@agent-runtime/domain"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type AckEntry, compare } from "./AckLog.js"
import { finish } from "./Finish.js"
import { note, type RunSettings, startRun } from "./Ledger.js"
import {
  openStore,
  type Position,
  restoreSaved,
  resumePosition,
  type StoredState,
  type SwarmPersistence
} from "./Persistence.js"
import {
  type AgentType,
  DEFAULT_CONCURRENCY,
  planWorkload,
  POOL_OVERCOMMIT,
  poolFor,
  reservedBytes,
  type Workload
} from "./Plan.js"
import * as Prng from "./Prng.js"
import type { ProgressEvent } from "./Progress.js"
import type { SwarmReport } from "./Report.js"
import { runRounds } from "./Rounds.js"
import { loadModules, populate, probeContracts } from "./Setup.js"

export {
  type AgentType,
  agentTypes,
  DEFAULT_AGENTS,
  DEFAULT_ROUNDS,
  DEFAULT_SEED,
  MIN_AGENTS,
  planCounts
} from "./Plan.js"
export type { SwarmPersistence } from "./Persistence.js"

export interface SwarmOptions {
  /** Number of agents to spawn (default 593, at least 12). */
  readonly agents?: number | undefined
  /**
   * Seed of the workload's PRNG (default 593): the same seed drives the same workload. A resumed run
   * continuing a stopped workload keeps that workload's seed (and PRNG state).
   */
  readonly seed?: number | undefined
  /**
   * Workload rounds (default 12, at least 12: the health and pressure phases need them). A resumed
   * run continuing a stopped workload defaults to that workload's rounds.
   */
  readonly rounds?: number | undefined
  /** Agent types whose module gets one byte flipped (outside its signature) before loading. */
  readonly tamper?: ReadonlyArray<string> | undefined
  /** Agents worked on at once (default 16). */
  readonly concurrency?: number | undefined
  /** Reads a fixture module's signed bytes (default: `readAgent` from `@agent-runtime/agents`). */
  readonly readModule?: ((name: AgentType) => Uint8Array) | undefined
  /** Receives progress events (see `Progress.ts` for a renderer). */
  readonly onProgress?: ((event: ProgressEvent) => void) | undefined
  /**
   * Durable repositories instead of the in-memory ones (crash recovery).
   * Without it the run keeps everything in memory.
   */
  readonly persistence?: SwarmPersistence | undefined
  /**
   * Called once per acknowledged state-changing invocation — after the
   * runtime returned its result (with `persistence`, after the state was
   * saved) — with the agent and the state value the call returned:
   * `counter` `increment`/`add` (the count), `lifecycle` `bump` (its state),
   * `flaky` `work` (calls made), `leaky` `leak` (KiB leaked).
   */
  readonly onAck?: ((agentId: AgentId, value: number) => void) | undefined
  /** Called for every eviction that deletes the agent's saved state (every reason but `Shutdown` and `Migration`), as the event stream delivers it. */
  readonly onEvicted?: ((agentId: string, reason: EvictionReason) => void) | undefined
  /**
   * A resumed run: the stopped run's acknowledged calls and evictions (its
   * ack log, `AckLog.parse`), compared with the agents that came back
   * (`report.persistence.ackLog`).
   */
  readonly acknowledged?: ReadonlyArray<AckEntry> | undefined
  /**
   * Worker threads of the resource pool (`ResourcePoolConfig.maxThreads`),
   * to differ from the program's one setting: by default the pool takes the
   * `ResourcePoolConfig` in context, the one the worker engine's layer was
   * sized from (main.ts provides it once, around both).
   */
  readonly maxThreads?: number | undefined
}

/**
 * Runs the swarm on the `WasmEngine` and `ModuleVerifier` in context (the
 * rest are the embedded in-memory defaults, or `options.persistence`'s
 * repositories) and returns its report. Typed errors of the workload are
 * counted in the report by tag; defects of runtime operations (and wrong
 * results, broken invariants) are counted as `crashes`. Fails only when the
 * persistent repositories cannot be opened or read (`RepositoryError`), or
 * when the runtime cannot start (`AgentRuntimes.StartError`: the engine runs
 * more worker threads than the pool's `maxThreads`).
 */
export const runSwarm = (
  options: SwarmOptions = {}
): Effect.Effect<SwarmReport, RepositoryError | AgentRuntimes.StartError, WasmEngine | ModuleVerifier> =>
  Effect.gen(function* () {
    const workload = planWorkload(options)
    // count the engine's compiles: one per distinct module, however often it is loaded
    const engine = yield* WasmEngine
    let compiles = 0
    const counting = Layer.succeed(WasmEngine, {
      ...engine,
      compile: (bytes, hash) => Effect.tap(engine.compile(bytes, hash), () => Effect.sync(() => void compiles++))
    } satisfies WasmEngineShape)
    return yield* Effect.scoped(
      Effect.gen(function* () {
        const started =
          options.persistence === undefined
            ? yield* memoryRuntime(options, workload, counting)
            : yield* persistentRuntime(options, options.persistence, workload, counting)
        return yield* swarm(started.runtime, settingsFor(options, workload, { ...started, compiles: () => compiles }))
      })
    )
  })

/** A runtime and what its start found (a persistent one: the store, and where a resumed workload continues). */
interface Started {
  readonly runtime: AgentRuntimeShape
  readonly poolBytes: number
  readonly stored: StoredState | undefined
  readonly position: Option.Option<Position>
}

/** The resource pool's settings: `totalMemory` bytes, `maxThreads` when given. */
const pool = (options: SwarmOptions, totalMemory: number) => ({
  totalMemory,
  overcommit: POOL_OVERCOMMIT, // the pressure demo over-commits explicitly (Plan.POOL_OVERCOMMIT)
  ...(options.maxThreads === undefined ? {} : { maxThreads: options.maxThreads })
})

/** The runtime on the embedded in-memory defaults, its pool sized for the plan. */
const memoryRuntime = (options: SwarmOptions, workload: Workload, engine: Layer.Layer<WasmEngine>) =>
  Effect.gen(function* () {
    const poolBytes = poolFor(reservedBytes(workload.plan))
    const runtimeLayer = AgentRuntimes.layerMemory({
      name: "swarm",
      pool: pool(options, poolBytes),
      autoPressure: false
    }).pipe(Layer.provide(engine))
    const started: Started = {
      runtime: Context.get(yield* Layer.build(runtimeLayer), AgentRuntime),
      poolBytes,
      stored: undefined,
      position: Option.none()
    }
    return started
  })

/**
 * The runtime on the persistent repositories: opened first (a fresh run discards what an earlier run saved, a
 * resumed one sizes its pool by it and reads its checkpoint); building the runtime restores every saved agent
 * (`restoreOnStart`).
 */
const persistentRuntime = (
  options: SwarmOptions,
  persistence: SwarmPersistence,
  workload: Workload,
  engine: Layer.Layer<WasmEngine>
) =>
  Effect.gen(function* () {
    const store = yield* openStore(persistence)
    const poolBytes = poolFor(
      store.stored.resume && store.savedBytes > 0 ? store.savedBytes : reservedBytes(workload.plan)
    )
    const runtimeLayer = AgentRuntimes.layer({
      name: "swarm",
      pool: pool(options, poolBytes),
      autoPressure: false,
      persistence: { snapshotAfterCalls: true, restoreOnStart: true }
    }).pipe(
      Layer.provide(
        Layer.mergeAll(
          engine,
          Layer.succeedContext(store.repositories),
          EventBuses.layerMemory,
          ExecutionAuthorizers.layerAllowAll
        )
      )
    )
    const started: Started = {
      runtime: Context.get(yield* Layer.build(runtimeLayer), AgentRuntime),
      poolBytes,
      stored: store.stored,
      position: store.stored.resume ? resumePosition(store.checkpoint, options.rounds) : Option.none()
    }
    return started
  })

const ignore = () => {}

/** The run's settings: the options with their defaults, the workload — or, resumed, the stopped workload's position. */
const settingsFor = (
  options: SwarmOptions,
  workload: Workload,
  found: Omit<Started, "runtime"> & { readonly compiles: () => number }
): RunSettings => {
  const position = Option.getOrUndefined(found.position)
  return {
    total: workload.total,
    seed: position?.seed ?? workload.seed,
    rounds: position?.rounds ?? workload.rounds,
    startRound: position?.startRound ?? 1,
    prng: position === undefined ? workload.prng : Prng.make(position.prngState),
    plan: found.stored?.resume === true ? [] : workload.plan,
    poolBytes: found.poolBytes,
    tamper: new Set(options.tamper ?? []),
    concurrency: Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY),
    read: options.readModule ?? ((name) => readAgent(name)),
    progress: options.onProgress ?? ignore,
    compiles: found.compiles,
    ack: options.onAck ?? ignore,
    evicted: options.onEvicted ?? ignore,
    acknowledged: options.acknowledged,
    stored: found.stored
  }
}

/** One run on `runtime`, phase after phase. */
const swarm = Effect.fn("Swarm.run")(function* (runtime: AgentRuntimeShape, settings: RunSettings) {
  const run = yield* startRun(runtime, settings)
  const restored = yield* restoreSaved(run)
  if (settings.startRound > 1) {
    yield* note(
      run,
      `continuing the stopped workload at round ${settings.startRound} of ${settings.rounds} (seed ${settings.seed})`
    )
  }
  const modules = yield* loadModules(run)
  const population = yield* populate(run, modules)
  const ackLog =
    settings.stored?.resume === true && settings.acknowledged !== undefined
      ? compare(settings.acknowledged, population.spawned, new Set((yield* runtime.agents).map((i) => i.agentId)))
      : null
  if (ackLog !== null) {
    yield* note(
      run,
      `ack log: ${ackLog.calls} acknowledged calls of ${ackLog.agents} agents; state came back for ${ackLog.cameBack}, lost ${ackLog.lost} ` +
        `(evicted since ${ackLog.evicted}, not readable ${ackLog.unchecked})`
    )
  }
  yield* probeContracts(run, population.spawned)
  yield* runRounds(run, population.spawned)
  return yield* finish(run, { restored, modules, population, ackLog })
})
