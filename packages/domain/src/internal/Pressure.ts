/**
 * Memory pressure (spec `handle_memory_pressure`; DESIGN.md "Memory
 * pressure"): above the pool's warning threshold, idle agents are passivated
 * first (they keep their state), then agents are evicted — unhealthy, least
 * recently active, largest; never `Critical` — until the pool is below it.
 * `MemoryPressure` carries the real before/after (DESIGN.md defect 1).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type { AgentId } from "../Ids.js"
import { MemoryPressure } from "../RuntimeEvent.js"
import { evictLocked } from "./Eviction.js"
import { idleAgents, passivateLocked } from "./Passivation.js"
import { emit, type RuntimeState } from "./RuntimeState.js"

/** Handles memory pressure now (under the lock); returns the evicted agents. */
export const handleMemoryPressure = (state: RuntimeState): Effect.Effect<ReadonlyArray<AgentId>> =>
  state.locked(
    Effect.gen(function* () {
      const { env } = state
      const level = env.pool.pressureLevel()
      if (level === "Normal") return []
      const memoryBefore = env.pool.usedMemory()
      const evicted: Array<AgentId> = []
      const passivated: Array<AgentId> = []
      const now = yield* Clock.currentTimeMillis
      // idle agents first keep their state: passivate them (when enabled) …
      for (const candidate of idleAgents(state, now)) {
        if (!env.pool.isUnderPressure()) break
        if (candidate.health === "Unhealthy" || candidate.state === "Failed") continue
        if (yield* passivateLocked(state, candidate)) passivated.push(candidate.agentId)
      }
      // … then evict: unhealthy, least recently active, largest
      for (const candidate of env.pressureCandidates()) {
        if (!env.pool.isUnderPressure()) break
        if (yield* evictLocked(state, candidate.agentId, "MemoryPressure")) evicted.push(candidate.agentId)
      }
      env.counters.pressureEvents++
      const memoryAfter = env.pool.usedMemory()
      yield* emit(
        state,
        (e) =>
          new MemoryPressure({
            ...e,
            evictedAgents: evicted,
            passivatedAgents: passivated,
            memoryBefore,
            memoryAfter,
            totalMemory: env.pool.totalMemory,
            pressureLevel: level
          })
      )
      return evicted
    })
  )

/** Whether a call just pushed the pool under pressure and no handling is queued yet (`autoPressure`). */
export const pressureDue = (state: RuntimeState): boolean =>
  state.settings.autoPressure && !state.pressureScheduled && state.env.pool.isUnderPressure()

/** Queues one background pressure handling when `pressureDue`. */
export const schedulePressure = (state: RuntimeState): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!pressureDue(state)) return Effect.void
    state.pressureScheduled = true
    return Effect.asVoid(
      FiberSet.run(
        state.fibers,
        Effect.ensuring(
          handleMemoryPressure(state),
          Effect.sync(() => (state.pressureScheduled = false))
        )
      )
    )
  })
