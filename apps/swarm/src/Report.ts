/**
 * The swarm's final report: what happened to every agent, invocation,
 * module, pressure event and health check of one run, as a human summary
 * (`formatText`) or JSON with stable keys (`toJson`).
 *
 * Counts of evictions, pressure events and health cycles come from the
 * runtime's event stream (`AgentEvicted`, `MemoryPressure`,
 * `HealthCheckCompleted`); cache counts from the runtime's compile cache.
 * Memory in bytes, times in ms.
 *
 * @since 0.1.0
 */
import type { EvictionReason } from "@agent-runtime/domain"
import type { AckComparison } from "./AckLog.js"

/** Pressure levels that produce a `MemoryPressure` event (Normal never does). */
export type ReportedPressureLevel = "Warning" | "High" | "Critical"

/** A module the runtime refused to load. `reason` is the error's tag (`InvalidSignature`). */
export interface RefusedModule {
  readonly name: string
  readonly reason: string
  readonly message: string
}

/** A saved agent that could not be brought back (`reason`: the error's message). */
export interface RestoreFailure {
  readonly agentId: string
  readonly reason: string
}

export interface SwarmReport {
  readonly agents: {
    /** Agents the plan asked for (`--agents`); on a resumed run, the restored agents the workload took over. */
    readonly planned: number
    /** Agents spawned by this run (0 on a resumed run: it spawns none). */
    readonly spawned: number
    /** Spawned (or, resumed, restored) agents per agent type. */
    readonly byType: Readonly<Record<string, number>>
    /** Agents of refused modules, not spawned. */
    readonly skipped: number
    /** Agents spawned as `Critical` (never evicted under pressure). */
    readonly critical: number
    /** Failed spawns by error tag. */
    readonly spawnFailed: Readonly<Record<string, number>>
    /** `AgentEvicted` events by `EvictionReason`. */
    readonly evicted: Readonly<Record<EvictionReason, number>>
    /** `AgentEvicted` events by reason, then agent type. */
    readonly evictedByType: Readonly<Record<EvictionReason, Readonly<Record<string, number>>>>
    /** Agents still live just before the shutdown. */
    readonly liveBeforeShutdown: number
  }
  readonly invocations: {
    readonly total: number
    readonly ok: number
    /** Failed invocations by error tag (expected ones: `Trap` from the trapper, `AgentNotRunning` while paused, …). */
    readonly failed: Readonly<Record<string, number>>
  }
  /** Results checked against a JavaScript oracle (counters, text CRC-32 / words, trapper arithmetic). */
  readonly verification: { readonly checked: number; readonly mismatches: number }
  readonly cache: {
    readonly hits: number
    readonly misses: number
    /** Calls to the engine's `compile` (one per distinct module). */
    readonly compiles: number
    readonly modulesLoaded: number
    /** Second loads of already loaded modules (each a cache hit). */
    readonly reloads: number
  }
  /** `MemoryPressure` events by the level detected. */
  readonly pressureEvents: Readonly<Record<ReportedPressureLevel, number>>
  readonly memory: {
    readonly poolBytes: number
    /**
     * The pool admits agents against their reservation (`ResourcePoolConfig.overcommit`,
     * `Plan.POOL_OVERCOMMIT`): reservations never exceed the pool, but the resident usage
     * (`peakUsed`) may, until pressure handling evicts. `false`: every agent is admitted against
     * its limit and `peakUsed ≤ poolBytes` always (spec invariant 1).
     */
    readonly overcommit: boolean
    /** Σ reservations of the agents spawned (or restored), bytes: what the pool admitted them against. */
    readonly reservedAfterSpawn: number
    /** Pool usage (Σ max(reservation, resident)) right after every agent was spawned, bytes. */
    readonly usedAfterSpawn: number
    /**
     * Highest pool usage seen, bytes, Σ max(reservation, resident memory and tables): the
     * largest of the usage after spawn (or, resumed, after the restore), after every round's
     * work (before pressure handling), and every `MemoryPressure` event's `memoryBefore`. With
     * `overcommit` it includes growth above the reservations, so it can pass `poolBytes`.
     */
    readonly peakUsed: number
    /**
     * Σ resident memory (linear memory and tables, bytes, as their budgets last recorded it) of the
     * agents still live just before the shutdown: the state a persistent run's store holds once the run
     * ends (`--db`: compare the SQLite file's size with it).
     */
    readonly liveBeforeShutdown: number
  }
  readonly health: {
    /** `checkHealth` cycles (`HealthCheckCompleted` events). */
    readonly cycles: number
    /** Agent checks over all cycles. */
    readonly checks: number
    readonly healthy: number
    readonly degraded: number
    readonly unhealthy: number
    /** Agents that reached `Failed` and were evicted with `HealthFailure`. */
    readonly failedEvicted: number
  }
  readonly lifecycle: {
    readonly paused: number
    /** Invocations of paused agents, each refused with `AgentNotRunning`. */
    readonly refusedWhilePaused: number
    readonly resumed: number
    /** Lifecycle calls (pause/resume/evict) that failed, by error tag. */
    readonly failed: Readonly<Record<string, number>>
  }
  readonly gc: { readonly runs: number; readonly modulesDropped: number }
  readonly refusedModules: ReadonlyArray<RefusedModule>
  /** Unexpected defects and broken invariants (wrong results, a critical agent evicted under pressure, …). Must be 0. */
  readonly crashes: number
  /** The first few crashes, described. */
  readonly crashDetails: ReadonlyArray<string>
  /** Durable state (`--db`): where it lives and what came back from it. */
  readonly persistence: {
    /** The SQLite file's path, or `"memory"` (nothing survives the process). */
    readonly store: string
    /** The run continued on restored agents instead of spawning (`--resume`). */
    readonly resumed: boolean
    /** Agents saved in the store when the run began. */
    readonly saved: number
    /** Saved agents deleted first because the run was a fresh one (not `--resume`). */
    readonly discarded: number
    /** Agents brought back from the store at start (`restoreOnStart`, then one `restoreAll` retry). */
    readonly restored: number
    /** Saved agents that could not be brought back, with the reason. */
    readonly restoreFailed: ReadonlyArray<RestoreFailure>
    /** Snapshots the runtime could not save (`RuntimeStats.snapshotFailures`). */
    readonly snapshotFailures: number
    /** Metrics samples written to the store (one per round). */
    readonly metricsSamples: number
    /** Other persistence operations that failed, by `operation:tag`. */
    readonly failed: Readonly<Record<string, number>>
    /**
     * The first round this run worked: 1, or — resumed — the round the stopped run's workload was in
     * (its checkpoint), so the workload continues instead of starting again.
     */
    readonly startRound: number
    /** A resumed run given the stopped run's ack log (`--ack-log`): how many acknowledged calls' states came back. */
    readonly ackLog: AckComparison | null
  }
  readonly durationMs: number
  /** `platform`: the engine's platform (`Native`: in-process; `Node`: worker_threads). */
  readonly run: { readonly seed: number; readonly rounds: number; readonly platform: string }
}

/** The report as JSON (stable key order, 2-space indent). */
export const toJson = (report: SwarmReport): string => JSON.stringify(report, null, 2)

const n = (x: number) => x.toLocaleString("en-US")
const mib = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MiB`
const pct = (part: number, whole: number) => (whole > 0 ? `${((part / whole) * 100).toFixed(1)} %` : "0 %")

/** `a 1 · b 2` over a record, optionally without zero entries. */
const list = (record: Readonly<Record<string, number>>, skipZero = false) => {
  const entries = Object.entries(record).filter(([, v]) => !skipZero || v > 0)
  return entries.length === 0 ? "none" : entries.map(([k, v]) => `${k} ${n(v)}`).join(" · ")
}

/** The pool's figures, labelled: over-committed, the reservations (≤ pool) and the resident peak (may pass it) apart. */
const poolLine = (m: SwarmReport["memory"]): string =>
  m.overcommit
    ? `pool ${mib(m.poolBytes)}, over-committed: reserved ${pct(m.reservedAfterSpawn, m.poolBytes)}, used ${pct(m.usedAfterSpawn, m.poolBytes)} after spawn; ` +
      `resident peak ${pct(m.peakUsed, m.poolBytes)} (growth above reservations, evicted under pressure)`
    : `pool ${mib(m.poolBytes)}: ${pct(m.usedAfterSpawn, m.poolBytes)} after spawn, peak ${pct(m.peakUsed, m.poolBytes)}`

const persistenceLine = (p: SwarmReport["persistence"]): string => {
  if (p.store === "memory") return "in memory (nothing survives the process; --db <path.sqlite> keeps it)"
  const parts = [
    `SQLite ${p.store}`,
    p.resumed
      ? `resumed: ${n(p.restored)} of ${n(p.saved)} saved agents restored, ${p.restoreFailed.length} failed` +
        (p.startRound > 1 ? `, workload continued at round ${p.startRound}` : "")
      : `fresh run` + (p.discarded > 0 ? ` (${n(p.discarded)} agents of an earlier run discarded)` : ""),
    `state saved after every call (${n(p.snapshotFailures)} failures)`,
    `${p.metricsSamples} metrics samples`
  ]
  if (Object.keys(p.failed).length > 0) parts.push(`failed: ${list(p.failed)}`)
  return parts.join("; ")
}

/** The ack-log comparison: one line, then the first lost agents. */
const ackLines = (a: AckComparison): Array<string> => [
  `acknowledged  ${n(a.calls)} calls of ${n(a.agents)} agents in the ack log: state came back for ${n(a.cameBack)}, lost ${n(a.lost)}` +
    `, evicted since ${n(a.evicted)}, not readable ${n(a.unchecked)}`,
  ...a.lostAgents
    .slice(0, 5)
    .map((l) => `  lost ${l.agentId}: acknowledged ${l.acknowledged}, came back ${l.restored ?? "not at all"}`)
]

/** The report for people: one labelled line per subject. */
export const formatText = (r: SwarmReport): string => {
  const failedTotal = Object.values(r.invocations.failed).reduce((a, b) => a + b, 0)
  const evictedTotal = Object.values(r.agents.evicted).reduce((a, b) => a + b, 0)
  const byType = (reason: EvictionReason) => {
    const s = list(r.agents.evictedByType[reason], true)
    return s === "none" ? "" : ` (${s})`
  }
  const lines = [
    `agent-runtime swarm — ${n(r.agents.planned)} agents ${r.persistence.resumed ? "restored" : "planned"}, seed ${r.run.seed}, ${r.run.rounds} rounds, ${r.run.platform} platform`,
    ``,
    `agents        ${r.persistence.resumed ? "restored" : "spawned"} ${n(r.persistence.resumed ? r.agents.planned : r.agents.spawned)} (${list(r.agents.byType)}), critical ${r.agents.critical}` +
      (r.agents.skipped > 0 ? `, skipped ${r.agents.skipped}` : "") +
      (Object.keys(r.agents.spawnFailed).length > 0 ? `, spawn failures: ${list(r.agents.spawnFailed)}` : ""),
    `evicted       ${n(evictedTotal)} in all`,
    ...(Object.keys(r.agents.evicted) as Array<EvictionReason>).map(
      (reason) => `  ${reason.padEnd(16)}${n(r.agents.evicted[reason]).padStart(6)}${byType(reason)}`
    ),
    `invocations   ${n(r.invocations.total)}: ok ${n(r.invocations.ok)}, failed ${n(failedTotal)} (${list(r.invocations.failed, true)})`,
    `verified      ${n(r.verification.checked)} results against JavaScript, ${n(r.verification.mismatches)} mismatches`,
    `cache         hits ${n(r.cache.hits)}, misses ${n(r.cache.misses)}, compiles ${n(r.cache.compiles)} (${r.cache.modulesLoaded} modules, ${r.cache.reloads} re-loads)`,
    `pressure      ${list(r.pressureEvents)} (${poolLine(r.memory)})`,
    `health        ${r.health.cycles} cycles, ${n(r.health.checks)} checks: healthy ${n(r.health.healthy)}, degraded ${n(r.health.degraded)}, unhealthy ${n(r.health.unhealthy)}; failed agents evicted ${r.health.failedEvicted}`,
    `lifecycle     paused ${r.lifecycle.paused}, invocations refused while paused ${r.lifecycle.refusedWhilePaused}, resumed ${r.lifecycle.resumed}` +
      (Object.keys(r.lifecycle.failed).length > 0 ? `, failed: ${list(r.lifecycle.failed)}` : ""),
    `gc            ${r.gc.runs} run(s), ${r.gc.modulesDropped} idle modules dropped`,
    `persistence   ${persistenceLine(r.persistence)}`,
    ...r.persistence.restoreFailed.slice(0, 5).map((f) => `  not restored ${f.agentId}: ${f.reason}`),
    ...(r.persistence.ackLog === null ? [] : ackLines(r.persistence.ackLog)),
    `refused       ${r.refusedModules.length === 0 ? "none" : r.refusedModules.map((m) => `${m.name}: ${m.reason} (${m.message})`).join("; ")}`,
    `crashes       ${r.crashes}`,
    ...r.crashDetails.map((d) => `  ${d}`),
    `time          ${(r.durationMs / 1000).toFixed(2)} s`
  ]
  return lines.join("\n")
}
