/**
 * Passivation (DESIGN.md "GC / compaction"): linear memory cannot shrink,
 * so an idle agent is snapshotted to the `InstanceRepository` and its
 * instance released; the next call rehydrates it transparently
 * (`activate`).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type AgentInstance, Mailbox } from "../AgentInstance.js"
import type { AgentId } from "../Ids.js"
import { AgentNotFound, type RepositoryError } from "../RuntimeError.js"
import type { PassivatedAgent } from "../RuntimeEnvironment.js"
import { AgentActivated, AgentPassivated } from "../RuntimeEvent.js"
import { evictLocked } from "./Eviction.js"
import { instantiate, resolveImports } from "./Instantiation.js"
import { getModule } from "./Modules.js"
import { toSnapshot } from "./Persistence.js"
import { recoverLocked } from "./Recovery.js"
import { emit, errorText, nextInstanceId, type RuntimeState } from "./RuntimeState.js"
import type { SpawnError } from "./Spawning.js"

/**
 * Snapshots an idle agent to the `InstanceRepository` and releases its
 * instance and memory. Only when its mailbox is free right now (it is
 * idle) and it is `Running` or `Paused`; never `Critical`. The caller
 * holds the lock. `false` when the agent was not passivated.
 */
export const passivateLocked = (state: RuntimeState, i: AgentInstance): Effect.Effect<boolean> =>
  Effect.map(
    i.exclusiveIfAvailable(
      Effect.gen(function* () {
        const { env } = state
        yield* recoverLocked(state, i) // never passivate the state a trap left
        const instance = i.instance
        if (env.instances.get(i.agentId) !== i || instance === undefined) return false
        const lifecycle = i.state
        if (lifecycle !== "Running" && lifecycle !== "Paused") return false
        const saved = yield* Effect.option(instance.snapshot)
        if (Option.isNone(saved)) return false
        const now = yield* Clock.currentTimeMillis
        const stored = yield* Effect.exit(state.instanceRepo.saveState(i.agentId, toSnapshot(i, saved.value, now)))
        if (stored._tag === "Failure") {
          i.recordError(`passivation failed: ${errorText(stored.cause)}`)
          return false
        }
        const record: PassivatedAgent = {
          agentId: i.agentId,
          moduleId: i.moduleId,
          moduleHash: i.moduleHash,
          config: i.config,
          state: lifecycle,
          health: i.health,
          consecutiveFailures: i.consecutiveFailures,
          invocationCount: i.invocationCount,
          errorCount: i.errorCount,
          createdAt: i.createdAt,
          lastActivity: i.lastActivity,
          passivatedAt: now
        }
        const removed = env.remove(i.agentId)
        env.passivated.set(i.agentId, record)
        yield* instance.terminate
        i.detach()
        yield* emit(
          state,
          (e) => new AgentPassivated({ ...e, agentId: i.agentId, memoryReleased: removed?.released ?? 0 })
        )
        return true
      })
    ),
    (r) => Option.getOrElse(r, () => false)
  )

/**
 * Rehydrates a passivated agent: claims its id and memory, instantiates
 * its module, restores the saved state, and returns it to the state it
 * had (without `_initialize`). Concurrent callers: the first activates,
 * the others find the new instance and queue on its mailbox.
 */
export const activate = (
  state: RuntimeState,
  agentId: AgentId
): Effect.Effect<void, SpawnError | RepositoryError | AgentNotFound> =>
  Effect.gen(function* () {
    const { env } = state
    const p = env.passivated.get(agentId)
    if (p === undefined) return
    const module = yield* getModule(state, p.moduleId)
    const saved = yield* state.instanceRepo.loadState(agentId)
    if (Option.isNone(saved)) {
      yield* state.locked(evictLocked(state, agentId, "Manual"))
      return yield* new AgentNotFound({ agentId })
    }
    const imports = yield* resolveImports(state, agentId, module, p.config.imports)
    const now = yield* Clock.currentTimeMillis
    const instanceId = nextInstanceId(state, agentId)
    const claimed = yield* state.locked(
      Effect.suspend(() => {
        if (env.passivated.get(agentId) !== p) return Effect.succeed(undefined)
        const r = env.claim({
          agentId,
          moduleId: p.moduleId,
          instanceId,
          config: p.config,
          now,
          createdAt: p.createdAt,
          mailbox: new Mailbox(),
          activating: true
        })
        return r instanceof Error ? Effect.fail(r) : Effect.succeed(r)
      })
    )
    if (claimed === undefined) return
    const done = yield* Effect.exit(
      claimed.exclusive(
        Effect.gen(function* () {
          const instance = yield* instantiate(state, agentId, module, p.config, imports)
          claimed.attach(instance)
          yield* instance.restore(saved.value.state)
          env.recordMemory(claimed, yield* instance.memoryBytes)
          claimed.rehydrate(p.state, p)
          yield* emit(
            state,
            (e) => new AgentActivated({ ...e, agentId, instanceId, passivatedFor: now - p.passivatedAt })
          )
        })
      )
    )
    if (done._tag === "Failure") {
      const instance = claimed.detach()
      if (instance !== undefined) yield* instance.terminate
      yield* state.locked(
        Effect.sync(() => {
          if (env.instances.get(agentId) === claimed) env.remove(agentId)
          env.passivated.set(agentId, p)
        })
      )
      return yield* Effect.failCause(done.cause)
    }
  })

/** Agents idle longer than `passivateIdleMs` at `now`, oldest activity first; the caller holds the lock. */
export const idleAgents = (state: RuntimeState, now: number): ReadonlyArray<AgentInstance> => {
  const idleMs = state.settings.gc.passivateIdleMs
  if (idleMs === undefined) return []
  return [...state.env.instances.values()]
    .filter((i) => i.state !== "Critical" && now - i.lastActivity > idleMs)
    .sort((a, b) => a.lastActivity - b.lastActivity)
}
