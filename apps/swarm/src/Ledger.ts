/**
 * One swarm run's shared record (`Run`): the runtime it drives, its
 * settings, the event tally, and the ledger of everything it counts —
 * invocations by outcome, results checked against JavaScript, lifecycle
 * operations, crashes. Every phase of a run (`Setup`, `Rounds`, `Tasks`,
 * `Finish`, `Persistence`) is a set of functions over this record.
 *
 * Every runtime operation of the swarm goes through `attempt` (typed
 * failures come back as their tag, defects count as crashes) or, for an
 * invocation, `call` (counted in `invocations`); stateful results are
 * checked with `follow`, others with `Ledger.check`.
 *
 * @since 0.1.0
 */
import type { AgentId, AgentRuntimeShape, EvictionReason, WasmValue } from "@agent-runtime/domain"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AckEntry } from "./AckLog.js"
import { bump, EventTally, zeroes } from "./EventTally.js"
import type { StoredState } from "./Persistence.js"
import type { AgentType, PlannedAgent, SwarmAgent } from "./Plan.js"
import type * as Prng from "./Prng.js"
import type { ProgressEvent } from "./Progress.js"

/** What a run was asked to do, resolved (defaults applied, a resumed run's position found). */
export interface RunSettings {
  /** Agents planned (`agents` option). */
  readonly total: number
  readonly seed: number
  /** Rounds of the whole workload. */
  readonly rounds: number
  /** The first round this run works (1, or where a resumed run's stopped workload was). */
  readonly startRound: number
  /** Drives every random choice of the rounds. */
  readonly prng: Prng.Prng
  /** The agents to spawn (none on a resumed run). */
  readonly plan: ReadonlyArray<PlannedAgent>
  /** The resource pool, bytes. */
  readonly poolBytes: number
  /** Agent types whose module gets one byte flipped before loading. */
  readonly tamper: ReadonlySet<string>
  /** Agents worked on at once. */
  readonly concurrency: number
  /** A fixture module's signed bytes. */
  readonly read: (name: AgentType) => Uint8Array
  readonly progress: (event: ProgressEvent) => void
  /** Calls to the engine's `compile` so far. */
  readonly compiles: () => number
  /** Hears every acknowledged state-changing call. */
  readonly ack: (agentId: AgentId, value: number) => void
  /** Hears every eviction that deleted an agent's saved state. */
  readonly evicted: (agentId: string, reason: EvictionReason) => void
  /** The stopped run's acknowledged calls (its ack log), compared on a resumed run. */
  readonly acknowledged: ReadonlyArray<AckEntry> | undefined
  /** Present on a persistent run. */
  readonly stored: StoredState | undefined
}

const MAX_CRASH_DETAILS = 10

/** Every tag an invocation can fail with (stable keys in the report). */
const invokeErrorTags = [
  "AgentNotFound",
  "AgentNotRunning",
  "AgentEvictedDuringCall",
  "FunctionNotFound",
  "SignatureMismatch",
  "MemoryExceeded",
  "Trap",
  "Timeout",
  "FuelExhausted",
  "Unauthorized",
  "RuntimeUnavailable"
] as const

/** What the swarm counts itself (the runtime's events are counted by `EventTally`). */
export class Ledger {
  readonly invocations = { total: 0, ok: 0, failed: zeroes<string>(invokeErrorTags) }
  readonly verification = { checked: 0, mismatches: 0 }
  readonly lifecycle = { paused: 0, refusedWhilePaused: 0, resumed: 0, failed: {} as Record<string, number> }
  /** Failed spawns by error tag. */
  readonly spawnFailed: Record<string, number> = {}
  /** Failed persistence operations by `operation:tag`. */
  readonly persistenceFailures: Record<string, number> = {}
  readonly crashDetails: Array<string> = []
  crashes = 0
  metricsSamples = 0
  /** Highest pool usage (bytes) sampled after spawn and after each round's work. */
  sampledPeak = 0

  /** Counts a defect or a broken invariant (the first few described). */
  crash(what: string): void {
    this.crashes++
    if (this.crashDetails.length < MAX_CRASH_DETAILS) this.crashDetails.push(what)
  }

  /** Counts a checked result; a wrong one is also a crash. */
  check(ok: boolean, what: () => string): void {
    this.verification.checked++
    if (!ok) {
      this.verification.mismatches++
      this.crash(`wrong result: ${what()}`)
    }
  }

  samplePeak(used: number): void {
    this.sampledPeak = Math.max(this.sampledPeak, used)
  }
}

/** One run: the runtime, the settings, the ledger, the event tally and when it started (ms). */
export interface Run {
  readonly runtime: AgentRuntimeShape
  readonly settings: RunSettings
  readonly ledger: Ledger
  readonly tally: EventTally
  readonly startedAt: number
}

/** Starts a run: subscribes to the runtime's events first (for the scope's life), so every eviction, pressure event and health cycle is counted. */
export const startRun = (runtime: AgentRuntimeShape, settings: RunSettings): Effect.Effect<Run, never, Scope.Scope> =>
  Effect.gen(function* () {
    const startedAt = yield* Clock.currentTimeMillis
    const tally = new EventTally(settings.evicted)
    const events = yield* runtime.events
    yield* Effect.forkChild(Stream.runForEach(events, (e) => Effect.sync(() => tally.add(e))))
    return { runtime, settings, ledger: new Ledger(), tally, startedAt }
  })

/** A one-line progress note. */
export const note = (run: Run, message: string): Effect.Effect<void> =>
  Effect.sync(() => run.settings.progress({ _tag: "Note", message }))

/** The outcome of `attempt`: the value, or the failure's tag (`"Defect"` for a defect). */
export interface Attempted<A> {
  readonly value: Option.Option<A>
  readonly tag: string | undefined
}

/** Runs `effect`; typed failures come back as `Option.none` plus their tag, defects count as crashes. */
export const attempt = <A, E extends { readonly _tag: string }>(
  run: Run,
  what: string,
  effect: Effect.Effect<A, E>
): Effect.Effect<Attempted<A>> =>
  Effect.map(Effect.exit(effect), (exit): Attempted<A> => {
    if (Exit.isSuccess(exit)) return { value: Option.some(exit.value), tag: undefined }
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isSome(error)) return { value: Option.none(), tag: error.value._tag }
    run.ledger.crash(`${what}: ${Cause.pretty(exit.cause)}`)
    return { value: Option.none(), tag: "Defect" }
  })

/** An invocation's outcome. */
export type Called =
  | { readonly ok: true; readonly results: ReadonlyArray<WasmValue> }
  | { readonly ok: false; readonly tag: string }

/** Invokes `agent.fn(args)`, counted in the ledger's invocations (by error tag when it fails). */
export const call = (
  run: Run,
  agent: SwarmAgent,
  fn: string,
  args: ReadonlyArray<WasmValue> = []
): Effect.Effect<Called> =>
  Effect.map(attempt(run, `invoke ${agent.id}.${fn}`, run.runtime.invoke(agent.id, fn, args)), (r): Called => {
    const { invocations } = run.ledger
    invocations.total++
    if (Option.isSome(r.value)) {
      invocations.ok++
      return { ok: true, results: r.value.value }
    }
    bump(invocations.failed, r.tag ?? "Defect")
    return { ok: false, tag: r.tag ?? "Defect" }
  })

/** The first result as an i32, when the call succeeded with one. */
export const i32 = (c: Called): number | undefined =>
  c.ok && typeof c.results[0] === "number" ? c.results[0] : undefined

/** Checks a stateful result against the expected state `next(expected)`; a restored agent's first result sets it. */
export const follow = (
  run: Run,
  agent: SwarmAgent,
  n: number,
  next: (expected: number) => number,
  what: string
): void => {
  if (!agent.known) {
    agent.expected = n
    agent.known = true
    return
  }
  agent.expected = next(agent.expected)
  run.ledger.check(n === agent.expected, () => `${agent.id}.${what} → ${n}, expected ${agent.expected}`)
}
