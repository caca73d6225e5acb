/**
 * Maintenance: the compile-cache GC and passivation of idle agents (spec
 * `MemoryManager::run_gc`, `needs_gc`), and the background loops
 * (`RuntimeSettings.maintenance`, `persistence.snapshotIntervalMs`) that run
 * health checks, GC, metrics samples and saves on their intervals, plus the
 * restore at start (`persistence.restoreOnStart`).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type { AgentId } from "../Ids.js"
import * as MemoryManager from "../MemoryManager.js"
import { checkHealth } from "./HealthChecks.js"
import { idleAgents, passivateLocked } from "./Passivation.js"
import { saveAll } from "./Persistence.js"
import { handleMemoryPressure } from "./Pressure.js"
import { recordMetrics } from "./ReadModels.js"
import type { RuntimeState } from "./RuntimeState.js"
import { restoreAll } from "./Snapshots.js"

/** Whether a GC is due (under pressure, or `gc.intervalMs` since the last one). */
export const needsGc = (state: RuntimeState): Effect.Effect<boolean> =>
  Effect.map(Clock.currentTimeMillis, (now) =>
    MemoryManager.needsGc({
      underPressure: state.env.pool.isUnderPressure(),
      lastGc: state.env.lastGc,
      now,
      settings: state.settings.gc
    })
  )

/** Drops compile-cache entries idle past `gc.maxIdleMs` and passivates idle agents (under the lock). */
export const runGc = (state: RuntimeState): Effect.Effect<MemoryManager.GcResult> =>
  state.locked(
    Effect.gen(function* () {
      const { env } = state
      const t0 = yield* Clock.currentTimeMillis
      const memoryBefore = env.pool.usedMemory()
      const dropped = env.cache.dropIdle(t0, state.settings.gc.maxIdleMs)
      let compacted = 0
      for (const idle of idleAgents(state, t0)) if (yield* passivateLocked(state, idle)) compacted++
      const t1 = yield* Clock.currentTimeMillis
      env.lastGc = t1
      return {
        duration: t1 - t0,
        memoryBefore,
        memoryAfter: env.pool.usedMemory(),
        evictedModules: dropped.length,
        compactedInstances: compacted
      }
    })
  )

/** Runs `task` every `ms` in the runtime's background fibers (nothing when `ms` is missing or not positive). */
const every = (
  state: RuntimeState,
  ms: number | undefined,
  task: Effect.Effect<unknown, unknown>
): Effect.Effect<void> =>
  ms === undefined || !(ms > 0)
    ? Effect.void
    : Effect.asVoid(FiberSet.run(state.fibers, Effect.forever(Effect.andThen(Effect.sleep(ms), Effect.ignore(task)))))

/** Starts the maintenance loops, then restores saved agents when `persistence.restoreOnStart` is set. */
export const startMaintenance = (state: RuntimeState): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { settings } = state
    yield* every(state, settings.maintenance.healthIntervalMs, checkHealth(state))
    yield* every(
      state,
      settings.maintenance.gcIntervalMs,
      Effect.flatMap(needsGc(state), (due) =>
        due ? Effect.andThen(handleMemoryPressure(state), runGc(state)) : Effect.void
      )
    )
    yield* every(state, settings.maintenance.metricsIntervalMs, recordMetrics(state))
    yield* every(state, settings.persistence.snapshotIntervalMs, saveAll(state))
    if (settings.persistence.restoreOnStart === true) {
      const result = yield* Effect.result(restoreAll(state))
      state.startRestore =
        result._tag === "Success"
          ? result.success
          : {
              restored: [],
              failed: [{ agentId: "*" as AgentId, reason: `listing saved agents failed: ${result.failure.message}` }]
            }
    }
  })
