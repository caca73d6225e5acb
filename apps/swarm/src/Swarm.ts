/**
 * The swarm: hundreds of real, signed WebAssembly agents taken through the
 * whole lifecycle of the Runtime context on one `AgentRuntime` with the
 * embedded defaults (in-memory repositories and bus) — or, with
 * `persistence`, on durable repositories (SQLite) where every call's state
 * is saved before it returns and a later run can `resume` on the saved
 * agents (crash recovery) — as one Effect program.
 *
 * What a run does (`runSwarm`):
 * 1. **Load** the signed fixture module of every agent type once (one compile
 *    each), then load each again (a compile-cache hit). A module tampered
 *    with (`tamper`) is refused with `InvalidSignature`; its type is skipped.
 * 2. **Spawn** the planned agents (default 593): mostly `counter`, `text` and
 *    `lifecycle`; a few dozen `leaky` agents whose `memoryReservation` is far
 *    below their `memoryLimit` (the pool over-commits); a few dozen `flaky`
 *    agents configured to start failing `_health_check`; a few `trapper`
 *    agents; a handful spawned `critical`. The pool is sized so every
 *    reservation fits at about 62 % usage.
 * 3. **Rounds** of workload, each followed by the supervisor's control loop:
 *    `handleMemoryPressure`, then `checkHealth`. Counters count, text agents
 *    process sentences through linear memory (word count, distinct words, top
 *    word, CRC-32 — all checked against JavaScript), trappers trap (counted,
 *    nothing crashes), lifecycle agents break their health and get recovered,
 *    flaky agents fail until the health checker evicts them (`HealthFailure`),
 *    some agents are paused (their invocations are refused) and resumed, one is
 *    evicted by hand, and in the last rounds the leaky agents grow the pool past
 *    70 %, 85 % and 95 % so pressure eviction happens (`MemoryPressure`).
 * 4. **GC** (`runGc`), **shutdown** (every agent stopped and evicted with
 *    `Shutdown`), and the report, whose eviction, pressure and health counts
 *    come from the runtime's event stream.
 *
 * Pressure is handled by the swarm's control loop (explicit
 * `handleMemoryPressure` after each round, `autoPressure: false`): a round's
 * leaks land first, every live agent then does its work, and the runtime's
 * eviction order (unhealthy → least recently active → largest) picks the
 * leaky agents — the ones that idled longest since their leak — instead of
 * whichever agents a mid-round automatic pass would find idle. It also keeps
 * a seeded run deterministic.
 *
 * @since 0.1.0
 */
import { manifestEntry, readAgent } from "@agent-runtime/agents"
import {
  type AgentConfigShape,
  type AgentId,
  type AgentInfo,
  AgentRuntime,
  type AgentRuntimeShape,
  AgentRuntimes,
  EventBuses,
  type EvictionReason,
  evictionReasons,
  ExecutionAuthorizers,
  InstanceRepository,
  makeMetadata,
  MemoryBudget,
  type MetricsRepository,
  type ModuleId,
  type ModuleRepository,
  type ModuleVerifier,
  type RepositoryError,
  type RuntimeEvent,
  WasmEngine,
  type WasmEngineShape,
  type WasmValue
} from "@agent-runtime/domain"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { facts, sentences } from "./Corpus.js"
import * as Prng from "./Prng.js"
import type { ProgressEvent } from "./Progress.js"
import type { RefusedModule, ReportedPressureLevel, RestoreFailure, SwarmReport } from "./Report.js"
import { flipOneByte } from "./Tamper.js"

// ---------------------------------------------------------------------------
// Options and plan
// ---------------------------------------------------------------------------

/** The fixture agent types the swarm runs (packages/agents/README.md). */
export type AgentType = "counter" | "text" | "lifecycle" | "leaky" | "flaky" | "trapper"
export const agentTypes: ReadonlyArray<AgentType> = ["counter", "text", "lifecycle", "leaky", "flaky", "trapper"]

/** Defaults: 593 agents, seed 593, 12 rounds, 16 concurrent tasks. */
export const DEFAULT_AGENTS = 593
export const DEFAULT_SEED = 593
export const DEFAULT_ROUNDS = 12
/** Fewest agents a plan can hold (at least one of every type, two leaky and two flaky). */
export const MIN_AGENTS = 12

export interface SwarmOptions {
  /** Number of agents to spawn (default 593, at least 12). */
  readonly agents?: number | undefined
  /** Seed of the workload's PRNG (default 593): the same seed drives the same workload. */
  readonly seed?: number | undefined
  /** Agent types whose module gets one byte flipped (outside its signature) before loading. */
  readonly tamper?: ReadonlyArray<string> | undefined
  /** Workload rounds (default 12, at least 12: the health and pressure phases need them). */
  readonly rounds?: number | undefined
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
  /**
   * Worker threads of the resource pool (`ResourcePool.maxThreads`); the
   * caller sizes a worker engine's pool with the same number (main.ts does,
   * for `--platform node`). Default: the runtime's default.
   */
  readonly maxThreads?: number | undefined
}

/**
 * Where a persistent run keeps modules, agent snapshots and metrics. The
 * runtime then runs with `persistence: { snapshotAfterCalls: true,
 * restoreOnStart: true }`: every call's resulting state is saved before the
 * call returns, and every saved agent comes back when the runtime starts.
 */
export interface SwarmPersistence {
  /** Where the repositories keep their data, for the report (e.g. the SQLite file's path). */
  readonly location: string
  /** The module, instance and metrics repositories (e.g. `SqliteRepositories.layer({ path })`). */
  readonly repositories: Layer.Layer<ModuleRepository | InstanceRepository | MetricsRepository, RepositoryError>
  /**
   * `true`: spawn nothing — continue the workload on the agents the runtime
   * restored from the repositories (an earlier run's, possibly killed).
   * `false` (default): a fresh run; agents saved by an earlier run are
   * discarded (deleted from the repository) before the runtime starts.
   */
  readonly resume?: boolean | undefined
}

/** One agent of the plan. */
interface PlannedAgent {
  readonly id: AgentId
  readonly type: AgentType
  readonly critical: boolean
  /** Health checks a flaky agent passes before it breaks (1 or 2). */
  readonly flakyAfter: number
  /** A lifecycle agent that breaks its health in round 2 (and is recovered). */
  readonly breaksHealth: boolean
}

/** Mutable per-agent bookkeeping during a run. */
interface SwarmAgent extends PlannedAgent {
  spawned: boolean
  paused: boolean
  /** counter: the count; lifecycle: its `state`; flaky: `work` calls. */
  expected: number
  /** `expected` is known (false for a restored agent until its first result tells it). */
  known: boolean
}

const MiB = MemoryBudget.MiB
const KiB = 1024

/** Memory config per type: limit and pool reservation, bytes. */
const memoryOf = (type: AgentType): { readonly limit: number; readonly reservation: number } => {
  switch (type) {
    case "leaky":
      return { limit: 64 * MiB, reservation: 1 * MiB } // over-committed: grows far past its reservation
    case "text":
      return { limit: 4 * MiB, reservation: 1 * MiB }
    default:
      return { limit: 1 * MiB, reservation: 1 * MiB }
  }
}

/** Pool usage right after spawning every planned agent. */
const SPAWN_USAGE = 0.62
/** Pool usage the leaky agents aim for in each leak round: past Warning, High, then Critical. */
const LEAK_TARGETS: ReadonlyArray<number> = [0.78, 0.9, 0.97]
/** A leaky agent stops growing at this share of its limit (its memory check stays healthy). */
const LEAK_CAP = 0.8
const PAUSE_ROUND = 3
const RESUME_ROUND = 5
const BREAK_ROUND = 2
const MANUAL_EVICT_ROUND = 6

const pad = (i: number, width: number) => String(i).padStart(width, "0")

/** How many agents of each type: mostly counter/text/lifecycle; ~6 % leaky, ~5 % flaky, ~2 % trapper, ~1 % critical. */
export const planCounts = (total: number): Readonly<Record<AgentType, number>> => {
  const leaky = Math.max(2, Math.round(total * 0.06))
  const flaky = Math.max(2, Math.round(total * 0.05))
  const trapper = Math.max(1, Math.round(total * 0.02))
  const rest = total - leaky - flaky - trapper
  const counter = Math.round(rest * 0.4)
  const text = Math.round(rest * 0.3)
  return { counter, text, lifecycle: rest - counter - text, leaky, flaky, trapper }
}

const makePlan = (total: number, prng: Prng.Prng): ReadonlyArray<PlannedAgent> => {
  const counts = planCounts(total)
  const width = String(total).length
  const criticalCount = Math.max(1, Math.round(total * 0.01))
  const plan: Array<PlannedAgent> = []
  for (const type of agentTypes) {
    for (let i = 1; i <= counts[type]; i++) {
      plan.push({
        id: `${type}-${pad(i, width)}` as AgentId,
        type,
        // critical: the first few counters and lifecycle agents, alternating
        critical: (type === "counter" || type === "lifecycle") && i <= Math.ceil(criticalCount / 2),
        flakyAfter: type === "flaky" ? prng.int(1, 2) : 0,
        breaksHealth: type === "lifecycle" && i > Math.ceil(criticalCount / 2) && prng.chance(0.08)
      })
    }
  }
  return plan
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

/** Every tag an invocation can fail with (stable keys in the report). */
const invokeErrorTags = [
  "AgentNotFound",
  "AgentNotRunning",
  "FunctionNotFound",
  "SignatureMismatch",
  "MemoryExceeded",
  "Trap",
  "Timeout",
  "FuelExhausted",
  "Unauthorized",
  "RuntimeUnavailable"
] as const

const zeroes = <K extends string>(keys: ReadonlyArray<K>): Record<K, number> =>
  Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>

const bump = (record: Record<string, number>, key: string, by = 1) => {
  record[key] = (record[key] ?? 0) + by
}

const typeOf = (agentId: string): string => agentId.replace(/-\d+$/, "")

/** Counts of the runtime's published events. */
class EventTally {
  readonly evicted = zeroes(evictionReasons)
  readonly evictedByType: Record<EvictionReason, Record<string, number>> = Object.fromEntries(
    evictionReasons.map((r) => [r, {}])
  ) as Record<EvictionReason, Record<string, number>>
  readonly evictionOf = new Map<string, EvictionReason>()
  evictedTotal = 0
  readonly pressure: Record<ReportedPressureLevel, number> = { Warning: 0, High: 0, Critical: 0 }
  pressureTotal = 0
  peakUsed = 0
  readonly health = { cycles: 0, checks: 0, healthy: 0, degraded: 0, unhealthy: 0, failedEvicted: 0 }
  modulesLoaded = 0

  add(e: RuntimeEvent): void {
    switch (e._tag) {
      case "AgentEvicted":
        this.evictedTotal++
        this.evicted[e.reason]++
        bump(this.evictedByType[e.reason], typeOf(e.agentId))
        this.evictionOf.set(e.agentId, e.reason)
        return
      case "MemoryPressure":
        this.pressureTotal++
        if (e.pressureLevel !== "Normal") this.pressure[e.pressureLevel]++
        this.peakUsed = Math.max(this.peakUsed, e.memoryBefore)
        return
      case "HealthCheckCompleted":
        this.health.cycles++
        this.health.checks += e.totalChecked
        this.health.healthy += e.healthyCount
        this.health.degraded += e.degradedCount
        this.health.unhealthy += e.unhealthyCount
        this.health.failedEvicted += e.failedAgents.length
        return
      case "ModuleLoaded":
        this.modulesLoaded++
        return
      default:
        return
    }
  }
}

// ---------------------------------------------------------------------------
// The program
// ---------------------------------------------------------------------------

type Called =
  | { readonly ok: true; readonly results: ReadonlyArray<WasmValue> }
  | { readonly ok: false; readonly tag: string }

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const MAX_CRASH_DETAILS = 10

/**
 * Runs the swarm on the `WasmEngine` and `ModuleVerifier` in context (the
 * rest are the embedded in-memory defaults, or `options.persistence`'s
 * repositories) and returns its report. Typed errors of the workload are
 * counted in the report by tag; defects of runtime operations (and wrong
 * results, broken invariants) are counted as `crashes`. Fails only when the
 * persistent repositories cannot be opened or read (`RepositoryError`).
 */
export const runSwarm = (
  options: SwarmOptions = {}
): Effect.Effect<SwarmReport, RepositoryError, WasmEngine | ModuleVerifier> =>
  Effect.gen(function*() {
    const total = Math.max(MIN_AGENTS, Math.floor(options.agents ?? DEFAULT_AGENTS))
    const seed = Math.floor(options.seed ?? DEFAULT_SEED)
    const rounds = Math.max(DEFAULT_ROUNDS, Math.floor(options.rounds ?? DEFAULT_ROUNDS))
    const prng = Prng.make(seed)
    const plan = makePlan(total, prng)
    const reserved = plan.reduce((sum, a) => sum + memoryOf(a.type).reservation, 0)
    const persistence = options.persistence
    const resume = persistence?.resume === true

    // count the engine's compiles: one per distinct module, however often it is loaded
    const engine = yield* WasmEngine
    let compiles = 0
    const counting: WasmEngineShape = {
      ...engine,
      compile: (bytes, hash) => Effect.tap(engine.compile(bytes, hash), () => Effect.sync(() => void compiles++))
    }
    const engineLayer = Layer.succeed(WasmEngine, counting)

    const context = (poolBytes: number, stored: StoredState | undefined): SwarmContext => ({
      total,
      seed,
      rounds,
      prng,
      plan: resume ? [] : plan,
      poolBytes,
      tamper: new Set(options.tamper ?? []),
      concurrency: Math.max(1, options.concurrency ?? 16),
      read: options.readModule ?? ((name) => readAgent(name)),
      progress: options.onProgress ?? (() => {}),
      compiles: () => compiles,
      ack: options.onAck ?? (() => {}),
      stored
    })
    const poolFor = (bytes: number) => Math.ceil(bytes / SPAWN_USAGE / MiB) * MiB

    if (persistence === undefined) {
      const poolBytes = poolFor(reserved)
      const runtimeLayer = AgentRuntimes.layerMemory({ name: "swarm", pool: { totalMemory: poolBytes, ...(options.maxThreads === undefined ? {} : { maxThreads: options.maxThreads }) }, autoPressure: false })
        .pipe(Layer.provide(engineLayer))
      return yield* Effect.scoped(
        Effect.flatMap(AgentRuntime, (runtime) => swarm(runtime, context(poolBytes, undefined)))
      ).pipe(Effect.provide(runtimeLayer))
    }

    return yield* Effect.scoped(
      Effect.gen(function*() {
        // the repositories first: a fresh run discards what an earlier run saved, a resumed one sizes its pool by it
        const repositories = yield* Layer.build(persistence.repositories)
        const instances = Context.get(repositories, InstanceRepository)
        const saved = yield* instances.listSaved
        // what the saved agents will hold once back: their reservation, or the memory they had grown to
        let savedBytes = 0
        if (resume) {
          for (const agentId of saved) {
            const snapshot = yield* instances.loadState(agentId)
            if (Option.isSome(snapshot)) savedBytes += Math.max(snapshot.value.memoryReservation, snapshot.value.state.memoryBytes)
          }
        } else {
          for (const agentId of saved) yield* instances.deleteState(agentId)
        }
        const poolBytes = poolFor(resume && savedBytes > 0 ? savedBytes : reserved)
        const runtimeLayer = AgentRuntimes.layer({
          name: "swarm",
          pool: { totalMemory: poolBytes, ...(options.maxThreads === undefined ? {} : { maxThreads: options.maxThreads }) },
          autoPressure: false,
          persistence: { snapshotAfterCalls: true, restoreOnStart: true }
        }).pipe(
          Layer.provide(
            Layer.mergeAll(engineLayer, Layer.succeedContext(repositories), EventBuses.layerMemory, ExecutionAuthorizers.layerAllowAll)
          )
        )
        // building the runtime restores every saved agent (restoreOnStart)
        const runtime = Context.get(yield* Layer.build(runtimeLayer), AgentRuntime)
        return yield* swarm(
          runtime,
          context(poolBytes, {
            location: persistence.location,
            resume,
            saved: saved.length,
            discarded: resume ? 0 : saved.length
          })
        )
      })
    )
  })

/** What a persistent run found in its repositories before the runtime started. */
interface StoredState {
  readonly location: string
  readonly resume: boolean
  /** Agents saved when the run began. */
  readonly saved: number
  /** Saved agents deleted because the run is a fresh one. */
  readonly discarded: number
}

interface SwarmContext {
  readonly total: number
  readonly seed: number
  readonly rounds: number
  readonly prng: Prng.Prng
  readonly plan: ReadonlyArray<PlannedAgent>
  readonly poolBytes: number
  readonly tamper: ReadonlySet<string>
  readonly concurrency: number
  readonly read: (name: AgentType) => Uint8Array
  readonly progress: (event: ProgressEvent) => void
  readonly compiles: () => number
  readonly ack: (agentId: AgentId, value: number) => void
  /** Present on a persistent run. */
  readonly stored: StoredState | undefined
}

const swarm = (runtime: AgentRuntimeShape, ctx: SwarmContext) =>
  Effect.gen(function*() {
    const { prng, progress } = ctx
    const startedAt = yield* Clock.currentTimeMillis
    const note = (message: string) => Effect.sync(() => progress({ _tag: "Note", message }))

    // subscribe before anything happens: every eviction, pressure event and health cycle is counted
    const tally = new EventTally()
    const events = yield* runtime.events
    yield* Effect.forkChild(Stream.runForEach(events, (e) => Effect.sync(() => tally.add(e))))

    // -- bookkeeping ----------------------------------------------------------
    const invocations = { total: 0, ok: 0, failed: zeroes<string>(invokeErrorTags) }
    const verification = { checked: 0, mismatches: 0 }
    const lifecycle = { paused: 0, refusedWhilePaused: 0, resumed: 0, failed: {} as Record<string, number> }
    const spawnFailed: Record<string, number> = {}
    const crashDetails: Array<string> = []
    let crashes = 0
    const crash = (what: string) => {
      crashes++
      if (crashDetails.length < MAX_CRASH_DETAILS) crashDetails.push(what)
    }
    const check = (ok: boolean, what: () => string) => {
      verification.checked++
      if (!ok) {
        verification.mismatches++
        crash(`wrong result: ${what()}`)
      }
    }

    /** Runs `effect`; typed failures come back as `Option.none` plus their tag, defects count as crashes. */
    const attempt = <A, E extends { readonly _tag: string }>(what: string, effect: Effect.Effect<A, E>) =>
      Effect.map(Effect.exit(effect), (exit): { readonly value: Option.Option<A>; readonly tag: string | undefined } => {
        if (Exit.isSuccess(exit)) return { value: Option.some(exit.value), tag: undefined }
        const error = Cause.findErrorOption(exit.cause)
        if (Option.isSome(error)) return { value: Option.none(), tag: error.value._tag }
        crash(`${what}: ${Cause.pretty(exit.cause)}`)
        return { value: Option.none(), tag: "Defect" }
      })

    const call = (agent: SwarmAgent, fn: string, args: ReadonlyArray<WasmValue> = []): Effect.Effect<Called> =>
      Effect.map(attempt(`invoke ${agent.id}.${fn}`, runtime.invoke(agent.id, fn, args)), (r): Called => {
        invocations.total++
        if (Option.isSome(r.value)) {
          invocations.ok++
          return { ok: true, results: r.value.value }
        }
        bump(invocations.failed, r.tag ?? "Defect")
        return { ok: false, tag: r.tag ?? "Defect" }
      })

    const i32 = (c: Called): number | undefined => (c.ok && typeof c.results[0] === "number" ? c.results[0] : undefined)

    /** Checks a stateful result against the expected state `next(expected)`; a restored agent's first result sets it. */
    const follow = (agent: SwarmAgent, n: number, next: (expected: number) => number, what: string) => {
      if (!agent.known) {
        agent.expected = n
        agent.known = true
        return
      }
      agent.expected = next(agent.expected)
      check(n === agent.expected, () => `${agent.id}.${what} → ${n}, expected ${agent.expected}`)
    }

    // -- 0. restored agents (persistent runs) ------------------------------------
    // `restoreOnStart` brought every saved agent back while the runtime started; `restoreAll`
    // retries whichever did not come back and says why (a restored agent is live, so it is skipped)
    const restoredAtStart = (yield* runtime.agents).map((i) => i.agentId)
    const restoreFailed: Array<RestoreFailure> = []
    let restoredLater: ReadonlyArray<AgentId> = []
    if (ctx.stored !== undefined) {
      const retry = yield* attempt("restoreAll", runtime.restoreAll)
      if (Option.isSome(retry.value)) {
        restoredLater = retry.value.value.restored
        for (const f of retry.value.value.failed) restoreFailed.push({ agentId: f.agentId, reason: f.reason })
      } else if (retry.tag !== "Defect") crash(`restoreAll failed: ${retry.tag}`)
      if (ctx.stored.resume) {
        yield* note(
          `restored ${restoredAtStart.length + restoredLater.length} of ${ctx.stored.saved} saved agents from ${ctx.stored.location}` +
            (restoreFailed.length > 0 ? `; ${restoreFailed.length} failed (${restoreFailed[0]!.agentId}: ${restoreFailed[0]!.reason})` : "")
        )
      } else if (ctx.stored.discarded > 0) {
        yield* note(`discarded ${ctx.stored.discarded} agents saved in ${ctx.stored.location} by an earlier run (a fresh run; --resume continues one)`)
      }
    }

    // -- 1. load --------------------------------------------------------------
    // (resumed: every type, though the restored agents' modules came back from the repository — a cache hit each)
    const types = ctx.stored?.resume === true ? agentTypes : agentTypes.filter((t) => ctx.plan.some((a) => a.type === t))
    progress({ _tag: "Phase", name: "loading modules", total: types.length * 2 })
    const moduleIds = new Map<AgentType, ModuleId>()
    const refusedModules: Array<RefusedModule> = []
    let reloads = 0
    for (const [index, type] of types.entries()) {
      const { version } = manifestEntry(type)
      const signed = ctx.read(type)
      const bytes = ctx.tamper.has(type) ? flipOneByte(signed).bytes : signed
      const metadata = makeMetadata({ name: type, version })
      const loaded = yield* Effect.exit(runtime.loadModule(bytes, metadata))
      if (Exit.isSuccess(loaded)) {
        moduleIds.set(type, loaded.value)
        // the same bytes again: verified, then found in the compile cache (no second compile)
        const again = yield* attempt(`reload ${type}`, runtime.loadModule(bytes, metadata))
        if (Option.isSome(again.value)) reloads++
      } else {
        const error = Cause.findErrorOption(loaded.cause)
        if (Option.isNone(error)) crash(`load ${type}: ${Cause.pretty(loaded.cause)}`)
        else refusedModules.push({ name: type, reason: error.value._tag, message: error.value.message })
      }
      progress({ _tag: "Advance", done: (index + 1) * 2 })
    }
    // Loading verifies and validates a module; the engine compiles the variant an agent needs (memory
    // cap = its budget) when the first agent of that module is spawned — or, resumed, restored.
    yield* note(
      `loaded ${moduleIds.size} modules (validated; ` +
        (ctx.stored?.resume === true ? "the restored agents compiled theirs when restored" : "agents compile at first spawn") +
        `; ${reloads} re-loads)` +
        (refusedModules.length > 0 ? `; refused ${refusedModules.map((m) => `${m.name} (${m.reason})`).join(", ")}` : "")
    )

    // -- 2. spawn (or take over the restored agents) ------------------------------
    const resuming = ctx.stored?.resume === true
    const agents: Array<SwarmAgent> = ctx.plan
      .filter((a) => moduleIds.has(a.type))
      .map((a) => ({ ...a, spawned: false, paused: false, expected: a.type === "lifecycle" ? 100 : 0, known: true }))
    const skipped = ctx.plan.length - agents.length
    if (resuming) agents.push(...(yield* takeOver()))
    const fresh = agents.filter((a) => !a.spawned)
    if (!resuming) progress({ _tag: "Phase", name: "spawning agents", total: fresh.length })
    let spawnedCount = 0
    const spawnOne = (agent: SwarmAgent) =>
      Effect.gen(function*() {
        const memory = memoryOf(agent.type)
        const config: AgentConfigShape = {
          memoryLimit: memory.limit,
          memoryReservation: memory.reservation,
          critical: agent.critical
        }
        const r = yield* attempt(`spawn ${agent.id}`, runtime.spawnAgent(agent.id, moduleIds.get(agent.type)!, config))
        if (Option.isSome(r.value)) {
          agent.spawned = true
          if (agent.type === "flaky") yield* call(agent, "configure", [agent.flakyAfter])
        } else bump(spawnFailed, r.tag ?? "Defect")
        progress({ _tag: "Advance", done: ++spawnedCount })
      })
    // The first agent of each type alone, then the rest concurrently: the runtime compiles the
    // variant of a module an agent needs (memory cap = its budget) on its first spawn, and
    // concurrent first spawns would each miss the compile cache and compile it again.
    const firsts = types.flatMap((t) => fresh.find((a) => a.type === t) ?? [])
    yield* Effect.forEach(firsts, spawnOne, { discard: true })
    yield* Effect.forEach(fresh.filter((a) => !firsts.includes(a)), spawnOne, { concurrency: ctx.concurrency, discard: true })
    const spawned = agents.filter((a) => a.spawned)
    const byType: Record<string, number> = {}
    for (const a of spawned) bump(byType, a.type)
    const afterSpawn = yield* runtime.stats
    // The pool's peak usage: sampled after spawn and after every round's work (before pressure handling
    // frees memory), and from every `MemoryPressure` event (`tally.peakUsed`) — so a run without pressure
    // events (a resumed one, typically) still reports its real peak.
    let sampledPeak = afterSpawn.memory.used
    const samplePeak = (used: number) => {
      sampledPeak = Math.max(sampledPeak, used)
    }
    yield* note(
      `${resuming ? "working on the restored" : "spawned"} ${spawned.length} agents; ` +
        `pool ${(afterSpawn.memory.used / MiB).toFixed(0)} of ${(ctx.poolBytes / MiB).toFixed(0)} MiB used`
    )

    // contract probes: arguments are checked against the export's signature, unknown exports are refused
    const probe = spawned.find((a) => a.type === "counter" && !a.critical) ?? spawned.find((a) => !a.critical)
    if (probe !== undefined) {
      const bad = yield* call(probe, probe.type === "counter" ? "add" : "_health_check", ["abc" as unknown as WasmValue])
      if (probe.type === "counter") check(!bad.ok && bad.tag === "SignatureMismatch", () => `${probe.id}.add("abc") → ${JSON.stringify(bad)}`)
      const missing = yield* call(probe, "no_such_export")
      check(!missing.ok && missing.tag === "FunctionNotFound", () => `${probe.id}.no_such_export → ${JSON.stringify(missing)}`)
    }

    // -- 3. rounds ------------------------------------------------------------
    const pauseCount = Math.max(2, Math.round((resuming ? spawned.length : ctx.total) * 0.02))
    const leakRounds = LEAK_TARGETS.map((target, i) => ({ round: ctx.rounds - LEAK_TARGETS.length + i, target }))

    let metricsSamples = 0
    const persistenceFailures: Record<string, number> = {}
    const liveInfo = Effect.map(runtime.agents, (infos) => new Map(infos.map((i) => [i.agentId as string, i])))
    const isWorking = (info: AgentInfo | undefined) => info !== undefined && (info.state === "Running" || info.state === "Critical")

    for (let round = 1; round <= ctx.rounds; round++) {
      const before = { ok: invocations.ok, failed: invocations.total - invocations.ok }
      let live = yield* liveInfo

      if (round === PAUSE_ROUND) {
        const candidates = prng
          .shuffle(spawned.filter((a) => !a.critical && ["counter", "text", "lifecycle"].includes(a.type) && isWorking(live.get(a.id))))
          .slice(0, pauseCount)
        for (const agent of candidates) {
          const paused = yield* attempt(`pause ${agent.id}`, runtime.pause(agent.id))
          if (Option.isNone(paused.value)) {
            bump(lifecycle.failed, `pause:${paused.tag}`)
            continue
          }
          agent.paused = true
          lifecycle.paused++
          const refused = yield* call(agent, agent.type === "text" ? "word_count" : agent.type === "lifecycle" ? "state" : "get", agent.type === "text" ? [0, 0] : [])
          if (!refused.ok && refused.tag === "AgentNotRunning") lifecycle.refusedWhilePaused++
          else crash(`invoking paused agent ${agent.id} was not refused: ${JSON.stringify(refused)}`)
        }
        yield* note(`paused ${lifecycle.paused} agents; ${lifecycle.refusedWhilePaused} invocations of them refused (AgentNotRunning)`)
      }
      if (round === RESUME_ROUND) {
        for (const agent of spawned.filter((a) => a.paused)) {
          const resumed = yield* attempt(`resume ${agent.id}`, runtime.resume(agent.id))
          if (Option.isSome(resumed.value)) {
            agent.paused = false
            lifecycle.resumed++
          } else bump(lifecycle.failed, `resume:${resumed.tag}`)
        }
        yield* note(`resumed ${lifecycle.resumed} agents`)
      }
      if (round === MANUAL_EVICT_ROUND) {
        const victim = prng.shuffle(spawned.filter((a) => !a.critical && a.type === "trapper" && live.has(a.id)))[0] ??
          spawned.find((a) => !a.critical && !a.paused && live.has(a.id))
        if (victim !== undefined) {
          const evicted = yield* attempt(`evict ${victim.id}`, runtime.evictAgent(victim.id, "Manual"))
          if (Option.isNone(evicted.value)) bump(lifecycle.failed, `evict:${evicted.tag}`)
        }
      }
      live = yield* liveInfo

      // leak sizes: spread what the pool needs to reach this round's target over the live leaky agents
      const leak = leakRounds.find((l) => l.round === round)
      const leakKiB = new Map<string, number>()
      const leakers = spawned.filter((a) => a.type === "leaky" && isWorking(live.get(a.id)))
      if (leak !== undefined && leakers.length > 0) {
        const stats = yield* runtime.stats
        const need = Math.max(0, leak.target * stats.memory.total - stats.memory.used)
        for (const agent of leakers) {
          const info = live.get(agent.id)!
          const below = Math.max(0, memoryOf("leaky").reservation - info.budget.used) // growth inside the reservation is free
          const room = Math.max(0, LEAK_CAP * info.budget.limit - info.budget.used)
          leakKiB.set(agent.id, Math.max(64, Math.ceil(Math.min(room, need / leakers.length + below) / KiB)))
        }
      } else {
        for (const agent of leakers) leakKiB.set(agent.id, 32)
      }

      // the round's tasks: the leaks first, then everyone else's work (all live agents in leak rounds, ~80 % otherwise)
      const sample = leak !== undefined ? 1 : 0.8
      const workers = spawned.filter((a) => !a.paused && isWorking(live.get(a.id)))
      const ordered = [...workers.filter((a) => a.type === "leaky"), ...prng.shuffle(workers.filter((a) => a.type !== "leaky"))]
      const tasks = ordered
        .filter((a) => a.type === "leaky" || prng.chance(sample))
        .map((agent) => task(agent, round, leakKiB.get(agent.id) ?? 0))
      progress({ _tag: "Phase", name: `round ${round}/${ctx.rounds}`, total: tasks.length })
      let done = 0
      yield* Effect.forEach(tasks, (t) => Effect.tap(t, () => Effect.sync(() => progress({ _tag: "Advance", done: ++done }))), {
        concurrency: ctx.concurrency,
        discard: true
      })

      samplePeak((yield* runtime.stats).memory.used)
      // the supervisor's control loop: pressure, then health
      const pressured = Option.getOrElse((yield* attempt("handleMemoryPressure", runtime.handleMemoryPressure)).value, () => [])
      yield* attempt("checkHealth", runtime.checkHealth)
      if (ctx.stored !== undefined) {
        // a persistent run also keeps the runtime's metrics: one sample per round
        const sampled = yield* attempt("recordMetrics", runtime.recordMetrics)
        if (Option.isSome(sampled.value)) metricsSamples++
        else bump(persistenceFailures, `recordMetrics:${sampled.tag}`)
      }
      const stats = yield* runtime.stats
      samplePeak(stats.memory.used)
      yield* note(
        `round ${round}/${ctx.rounds}: ${invocations.ok - before.ok} ok, ${invocations.total - invocations.ok - before.failed} failed; ` +
          `pool ${((stats.memory.used / stats.memory.total) * 100).toFixed(1)} %` +
          (pressured.length > 0 ? `, ${pressured.length} evicted under pressure` : "") +
          `; ${stats.agents} live`
      )
    }

    // -- 4. gc, shutdown --------------------------------------------------------
    const gc = (yield* attempt("runGc", runtime.runGc)).value
    const liveBeforeShutdown = (yield* runtime.agents).length
    progress({ _tag: "Phase", name: "shutting down", total: liveBeforeShutdown })
    yield* attempt("shutdown", runtime.shutdown)
    const final = yield* runtime.stats
    if (final.status !== "Stopped" || final.agents !== 0) crash(`after shutdown: status ${final.status}, ${final.agents} agents left`)
    progress({ _tag: "Advance", done: liveBeforeShutdown })

    // wait until the event stream has delivered everything the runtime counted
    for (let spins = 0; spins < 100_000; spins++) {
      if (tally.evictedTotal >= final.evicted && tally.pressureTotal >= final.pressureEvents && tally.health.cycles >= final.healthChecks) break
      yield* Effect.yieldNow
    }
    if (tally.evictedTotal !== final.evicted) crash(`event stream: ${tally.evictedTotal} AgentEvicted events, runtime counted ${final.evicted}`)

    // invariants
    for (const agent of spawned.filter((a) => a.critical)) {
      const reason = tally.evictionOf.get(agent.id)
      if (reason !== undefined && reason !== "Shutdown") crash(`critical agent ${agent.id} evicted with ${reason}`)
    }
    const finishedAt = yield* Clock.currentTimeMillis
    yield* note(`done in ${((finishedAt - startedAt) / 1000).toFixed(2)} s`)

    const report: SwarmReport = {
      agents: {
        planned: resuming ? spawned.length : ctx.plan.length,
        spawned: resuming ? 0 : spawned.length,
        byType,
        skipped,
        critical: spawned.filter((a) => a.critical).length,
        spawnFailed,
        evicted: tally.evicted,
        evictedByType: tally.evictedByType,
        liveBeforeShutdown
      },
      invocations,
      verification,
      cache: {
        hits: final.cache.hits,
        misses: final.cache.misses,
        compiles: ctx.compiles(),
        modulesLoaded: moduleIds.size,
        reloads
      },
      pressureEvents: tally.pressure,
      memory: { poolBytes: ctx.poolBytes, usedAfterSpawn: afterSpawn.memory.used, peakUsed: Math.max(sampledPeak, tally.peakUsed) },
      health: tally.health,
      lifecycle,
      gc: { runs: Option.isSome(gc) ? 1 : 0, modulesDropped: Option.isSome(gc) ? gc.value.evictedModules : 0 },
      refusedModules,
      crashes,
      crashDetails,
      persistence: {
        store: ctx.stored?.location ?? "memory",
        resumed: resuming,
        saved: ctx.stored?.saved ?? 0,
        discarded: ctx.stored?.discarded ?? 0,
        restored: restoredAtStart.length + restoredLater.length,
        restoreFailed,
        snapshotFailures: final.snapshotFailures,
        metricsSamples,
        failed: persistenceFailures
      },
      durationMs: finishedAt - startedAt,
      run: { seed: ctx.seed, rounds: ctx.rounds, platform: runtime.platform }
    }
    return report

    /**
     * The agents restored from the repositories, as the workload's agents
     * (sorted by id). A counter's count and a lifecycle agent's state are
     * read now, so their first calls are checked against what came back;
     * a flaky agent's count is learned from its first `work`.
     */
    function takeOver(): Effect.Effect<Array<SwarmAgent>> {
      return Effect.gen(function*() {
        const infos = [...(yield* runtime.agents)].sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0))
        const taken = infos.flatMap((info): Array<SwarmAgent> => {
          const type = typeOf(info.agentId)
          if (!(agentTypes as ReadonlyArray<string>).includes(type)) return []
          return [{
            id: info.agentId,
            type: type as AgentType,
            critical: info.state === "Critical",
            flakyAfter: 0,
            breaksHealth: false,
            spawned: true,
            paused: info.state === "Paused",
            expected: 0,
            known: false
          }]
        })
        yield* Effect.forEach(
          taken.filter((a) => !a.paused && (a.type === "counter" || a.type === "lifecycle")),
          (agent) =>
            Effect.map(call(agent, agent.type === "counter" ? "get" : "state"), (c) => {
              const n = i32(c)
              if (n !== undefined) {
                agent.expected = n
                agent.known = true
              }
            }),
          { concurrency: ctx.concurrency, discard: true }
        )
        return taken
      })
    }

    // -- tasks (one per agent per round; random choices drawn when the task is built) ----------
    function task(agent: SwarmAgent, round: number, leakKiB: number): Effect.Effect<void> {
      switch (agent.type) {
        case "counter":
          return counterTask(agent, prng.int(0, 3), prng.int(1, 100), BigInt(prng.int(-1_000_000, 1_000_000)) * 1_000_003n)
        case "text": {
          const parts = prng.int(1, 3)
          const text = Array.from({ length: parts }, () => prng.pick(sentences)).join(" ")
          return textTask(agent, text)
        }
        case "lifecycle":
          return lifecycleTask(agent, round === BREAK_ROUND && agent.breaksHealth)
        case "leaky":
          return Effect.gen(function*() {
            // what it leaked so far is tracked here (a restored agent is asked once): with `--db` every
            // call saves the agent's whole memory, tens of MiB for a leaky agent late in the run
            if (!agent.known) {
              const leaked = i32(yield* call(agent, "leaked"))
              if (leaked !== undefined) follow(agent, leaked, (e) => e, "leaked()")
            }
            const after = i32(yield* call(agent, "leak", [leakKiB]))
            if (after !== undefined) {
              ctx.ack(agent.id, after)
              follow(agent, after, (e) => e + leakKiB, `leak(${leakKiB})`)
            }
          })
        case "flaky":
          return Effect.gen(function*() {
            const n = i32(yield* call(agent, "work"))
            if (n !== undefined) {
              ctx.ack(agent.id, n)
              follow(agent, n, (e) => e + 1, "work()")
            }
          })
        case "trapper":
          return trapperTask(agent, prng.int(1, 100_000), prng.int(1, 97), prng.int(0, 3))
      }
    }

    function counterTask(agent: SwarmAgent, op: number, k: number, big: bigint): Effect.Effect<void> {
      return Effect.gen(function*() {
        if (op === 0 || op === 1) {
          const n = i32(yield* call(agent, "increment"))
          if (n !== undefined) {
            ctx.ack(agent.id, n)
            follow(agent, n, (e) => e + 1, "increment()")
          }
        }
        if (op === 1 || op === 2) {
          const n = i32(yield* call(agent, "add", [k]))
          if (n !== undefined) {
            ctx.ack(agent.id, n)
            follow(agent, n, (e) => e + k, `add(${k})`)
          }
        }
        if (op === 3) {
          const r = yield* call(agent, "add_i64", [big, big * 3n])
          if (r.ok) check(r.results[0] === BigInt.asIntN(64, big * 4n), () => `${agent.id}.add_i64 → ${String(r.results[0])}`)
          const n = i32(yield* call(agent, "get"))
          if (n !== undefined) follow(agent, n, (e) => e, "get()")
        }
      })
    }

    function lifecycleTask(agent: SwarmAgent, breakHealth: boolean): Effect.Effect<void> {
      return Effect.gen(function*() {
        const n = i32(yield* call(agent, "bump"))
        if (n !== undefined) {
          ctx.ack(agent.id, n)
          follow(agent, n, (e) => e + 1, "bump()")
        }
        const initialized = i32(yield* call(agent, "initialized"))
        if (initialized !== undefined) check(initialized === 1, () => `${agent.id}.initialized() → ${initialized}`)
        if (breakHealth) yield* call(agent, "break_health")
      })
    }

    function trapperTask(agent: SwarmAgent, a: number, b: number, trapKind: number): Effect.Effect<void> {
      return Effect.gen(function*() {
        const ok = i32(yield* call(agent, "ok"))
        if (ok !== undefined) check(ok === 42, () => `${agent.id}.ok() → ${ok}`)
        const q = i32(yield* call(agent, "divide", [a, b]))
        if (q !== undefined) check(q === Math.trunc(a / b), () => `${agent.id}.divide(${a}, ${b}) → ${q}`)
        // one trap per task: counted as a failed invocation (Trap), the agent stays usable
        const [fn, args]: [string, Array<WasmValue>] =
          trapKind === 0 ? ["divide", [a, 0]] : trapKind === 1 ? ["crash", []] : trapKind === 2 ? ["oob", []] : ["divide", [-2_147_483_648, -1]]
        const trapped = yield* call(agent, fn, args)
        check(!trapped.ok && trapped.tag !== "Defect", () => `${agent.id}.${fn} did not trap: ${JSON.stringify(trapped)}`)
        const after = i32(yield* call(agent, "ok"))
        if (after !== undefined) check(after === 42, () => `${agent.id}.ok() after a trap → ${after}`)
      })
    }

    function textTask(agent: SwarmAgent, text: string): Effect.Effect<void> {
      return Effect.gen(function*() {
        const bytes = encoder.encode(text)
        const expected = facts(bytes)
        const ptr = i32(yield* call(agent, "alloc", [bytes.length]))
        if (ptr === undefined) return
        const written = yield* attempt(`writeMemory ${agent.id}`, runtime.writeMemory(agent.id, ptr, bytes))
        if (Option.isNone(written.value)) return
        const args = [ptr, bytes.length]
        const words = i32(yield* call(agent, "word_count", args))
        if (words !== undefined) check(words === expected.wordCount, () => `${agent.id}.word_count → ${words}, expected ${expected.wordCount}`)
        const unique = i32(yield* call(agent, "unique_words", args))
        if (unique !== undefined) check(unique === expected.uniqueWords, () => `${agent.id}.unique_words → ${unique}, expected ${expected.uniqueWords}`)
        const crc = i32(yield* call(agent, "checksum", args))
        if (crc !== undefined) check(crc >>> 0 === expected.checksum, () => `${agent.id}.checksum → ${crc >>> 0}, expected ${expected.checksum}`)
        const pair = i32(yield* call(agent, "top_word", args))
        if (pair !== undefined) {
          const word = yield* attempt(
            `readMemory ${agent.id}`,
            Effect.flatMap(runtime.readMemory(agent.id, pair, 8), (raw) => {
              const view = new DataView(raw.buffer, raw.byteOffset, 8)
              const at = view.getUint32(0, true)
              const length = view.getUint32(4, true)
              return length === 0 ? Effect.succeed("") : Effect.map(runtime.readMemory(agent.id, at, length), (w) => decoder.decode(w))
            })
          )
          if (Option.isSome(word.value)) {
            const top = word.value.value
            check(top === expected.topWord, () => `${agent.id}.top_word → "${top}", expected "${expected.topWord}"`)
          }
        }
        yield* call(agent, "dealloc", args)
      })
    }
  })
