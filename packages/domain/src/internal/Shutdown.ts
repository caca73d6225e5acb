/**
 * Shutdown: stops every agent (`_cleanup`), evicts it — and every
 * passivated agent — with `Shutdown` (saved states are kept), drops prepared
 * reservations, and stops the runtime. Idempotent.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { evictLocked } from "./Eviction.js"
import { stopLocked } from "./Lifecycle.js"
import type { RuntimeState } from "./RuntimeState.js"

/** Shuts the runtime down: ShuttingDown → Stopped. */
export const shutdown = (state: RuntimeState): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { env } = state
    if (env.status === "ShuttingDown" || env.status === "Stopped") return
    env.status = "ShuttingDown"
    const all = [...env.instances.values()]
    yield* Effect.forEach(all, (i) => i.exclusive(stopLocked(state, i)), { concurrency: 16, discard: true })
    yield* state.locked(
      Effect.gen(function* () {
        for (const i of all) yield* evictLocked(state, i.agentId, "Shutdown")
        for (const id of [...env.passivated.keys()]) yield* evictLocked(state, id, "Shutdown")
        for (const id of [...env.prepared.keys()]) env.unprepare(id)
      })
    )
    env.status = "Stopped"
  })
