/**
 * Eviction (spec `evict_agent`): removes an agent — live or passivated —
 * releases its memory, terminates its instance, deletes its saved state
 * (unless the runtime is shutting down) and publishes `AgentEvicted`.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type { AgentInstance } from "../AgentInstance.js"
import { type EvictionReason, keepsSavedState } from "../EvictionReason.js"
import type { AgentId } from "../Ids.js"
import { AgentNotFound } from "../RuntimeError.js"
import { AgentEvicted } from "../RuntimeEvent.js"
import { type RuntimeState, stampedEvent } from "./RuntimeState.js"

/** Why each evicted instance was evicted: its queued and in-flight calls fail with the reason. */
const evictions = new WeakMap<AgentInstance, EvictionReason>()

/**
 * Why the host evicted this instance (`undefined`: it was not evicted). A
 * call that queued on its mailbox before the eviction, or was running when
 * it came, fails with `AgentEvictedDuringCall` and this reason.
 */
export const evictionOf = (i: AgentInstance): EvictionReason | undefined => evictions.get(i)

/** Removes an agent; the caller holds the lock. `false` when there was no such agent. */
export const evictLocked = (state: RuntimeState, agentId: AgentId, reason: EvictionReason): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const { env, instanceRepo } = state
    const now = yield* Clock.currentTimeMillis
    const passivated = env.passivated.get(agentId)
    if (passivated !== undefined && !env.instances.has(agentId)) {
      env.passivated.delete(agentId)
      env.counters.evicted++
      if (!keepsSavedState(reason)) yield* Effect.ignore(instanceRepo.deleteState(agentId))
      yield* state.bus.publish(
        stampedEvent(state, AgentEvicted, now, {
          agentId,
          reason,
          memoryReleased: 0,
          uptime: now - passivated.createdAt
        })
      )
      return true
    }
    const removed = env.remove(agentId)
    if (removed === undefined) return false
    env.counters.evicted++
    if (state.persistent && !keepsSavedState(reason)) yield* Effect.ignore(instanceRepo.deleteState(agentId))
    const { instance, released } = removed
    evictions.set(instance, reason)
    const engineInstance = instance.detach()
    if (engineInstance !== undefined) yield* engineInstance.terminate
    yield* state.bus.publish(
      stampedEvent(state, AgentEvicted, now, {
        agentId,
        reason,
        memoryReleased: released,
        uptime: instance.uptime(now)
      })
    )
    return true
  })

/** Evicts an agent under the lock; `AgentNotFound` when there is none. */
export const evictAgent = (
  state: RuntimeState,
  agentId: AgentId,
  reason: EvictionReason
): Effect.Effect<void, AgentNotFound> =>
  state.locked(
    Effect.flatMap(evictLocked(state, agentId, reason), (ok) =>
      ok ? Effect.void : Effect.fail(new AgentNotFound({ agentId }))
    )
  )

/** Evicts an agent in the background (under the lock), after a failed call. */
export const evictLater = (state: RuntimeState, agentId: AgentId, reason: EvictionReason): Effect.Effect<void> =>
  Effect.asVoid(FiberSet.run(state.fibers, state.locked(evictLocked(state, agentId, reason))))
