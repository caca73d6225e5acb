/**
 * A run's last phase: **GC** (`runGc`), **shutdown** (every agent stopped
 * and evicted with `Shutdown`; with persistence their state stays saved),
 * waiting until the event stream has delivered everything the runtime
 * counted, the invariants (a critical agent is never evicted but by the
 * shutdown), and the report (`Report.ts`): the ledger's counts, the event
 * tally's evictions, pressure and health, the runtime's cache counts.
 *
 * @since 0.1.0
 */
import { keepsSavedState } from "@agent-runtime/domain"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { AckComparison } from "./AckLog.js"
import { attempt, note, type Run } from "./Ledger.js"
import type { Restored } from "./Persistence.js"
import { POOL_OVERCOMMIT, reservedBytes } from "./Plan.js"
import type { LoadedModules, Population } from "./Setup.js"
import type { SwarmReport } from "./Report.js"

/** What the earlier phases hand to the report. */
export interface Phases {
  readonly restored: Restored
  readonly modules: LoadedModules
  readonly population: Population
  /** The ack-log comparison of a resumed run given the stopped run's log. */
  readonly ackLog: AckComparison | null
}

/** GC, shutdown, the invariants, and the report. */
export const finish = Effect.fn("Swarm.finish")(function* (run: Run, phases: Phases) {
  const { runtime, settings, ledger, tally } = run
  const gc = (yield* attempt(run, "runGc", runtime.runGc)).value
  const live = yield* runtime.agents
  const liveBeforeShutdown = live.length
  const liveBytesBeforeShutdown = live.reduce((sum, a) => sum + a.budget.used, 0)
  settings.progress({ _tag: "Phase", name: "shutting down", total: liveBeforeShutdown })
  yield* attempt(run, "shutdown", runtime.shutdown)
  const final = yield* runtime.stats
  if (final.status !== "Stopped" || final.agents !== 0)
    ledger.crash(`after shutdown: status ${final.status}, ${final.agents} agents left`)
  settings.progress({ _tag: "Advance", done: liveBeforeShutdown })

  // wait until the event stream has delivered everything the runtime counted
  for (let spins = 0; spins < 100_000; spins++) {
    if (
      tally.evictedTotal >= final.evicted &&
      tally.pressureTotal >= final.pressureEvents &&
      tally.health.cycles >= final.healthChecks
    )
      break
    yield* Effect.yieldNow
  }
  if (tally.evictedTotal !== final.evicted)
    ledger.crash(`event stream: ${tally.evictedTotal} AgentEvicted events, runtime counted ${final.evicted}`)

  // invariants
  const { spawned } = phases.population
  for (const agent of spawned.filter((a) => a.critical)) {
    const reason = tally.evictionOf.get(agent.id)
    if (reason !== undefined && !keepsSavedState(reason))
      ledger.crash(`critical agent ${agent.id} evicted with ${reason}`)
  }
  const finishedAt = yield* Clock.currentTimeMillis
  yield* note(run, `done in ${((finishedAt - run.startedAt) / 1000).toFixed(2)} s`)

  const resumed = settings.stored?.resume === true
  const { modules, population, restored } = phases
  const report: SwarmReport = {
    agents: {
      planned: resumed ? spawned.length : settings.plan.length,
      spawned: resumed ? 0 : spawned.length,
      byType: population.byType,
      skipped: population.skipped,
      critical: spawned.filter((a) => a.critical).length,
      spawnFailed: ledger.spawnFailed,
      evicted: tally.evicted,
      evictedByType: tally.evictedByType,
      liveBeforeShutdown
    },
    invocations: ledger.invocations,
    verification: ledger.verification,
    cache: {
      hits: final.cache.hits,
      misses: final.cache.misses,
      compiles: settings.compiles(),
      modulesLoaded: modules.moduleIds.size,
      reloads: modules.reloads
    },
    pressureEvents: tally.pressure,
    memory: {
      poolBytes: settings.poolBytes,
      overcommit: POOL_OVERCOMMIT,
      reservedAfterSpawn: reservedBytes(spawned),
      usedAfterSpawn: population.usedAfterSpawn,
      peakUsed: Math.max(ledger.sampledPeak, tally.peakUsed),
      liveBeforeShutdown: liveBytesBeforeShutdown
    },
    health: tally.health,
    lifecycle: ledger.lifecycle,
    gc: { runs: Option.isSome(gc) ? 1 : 0, modulesDropped: Option.isSome(gc) ? gc.value.evictedModules : 0 },
    refusedModules: modules.refused,
    crashes: ledger.crashes,
    crashDetails: ledger.crashDetails,
    persistence: {
      store: settings.stored?.location ?? "memory",
      resumed,
      saved: settings.stored?.saved ?? 0,
      discarded: settings.stored?.discarded ?? 0,
      restored: restored.agents.length,
      restoreFailed: restored.failed,
      snapshotFailures: final.snapshotFailures,
      metricsSamples: ledger.metricsSamples,
      failed: ledger.persistenceFailures,
      startRound: settings.startRound,
      ackLog: phases.ackLog
    },
    durationMs: finishedAt - run.startedAt,
    run: { seed: settings.seed, rounds: settings.rounds, platform: runtime.platform }
  }
  return report
})
