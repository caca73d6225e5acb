/**
 * `LeasedRuntime`: the runtime's entry points that create an agent on this
 * host — `spawnAgent` and `restore` (activation from the last snapshot) —
 * guarded by the agent's lease (`Leases`), so an agent lives on one host at
 * a time across every host sharing the lease bucket (the spec's invariant
 * 4, distributed; issue 14 item 2).
 *
 * - `spawnAgent` / `restore` first take the lease (`Leases.hold`): held by
 *   another live host → `AgentAlreadyExists { agentId, owner }` and nothing
 *   is created here; then call the runtime, and give the lease back if that
 *   fails.
 * - The lease is renewed while the agent is registered here (passivated
 *   agents included: they are still this host's) and released when the
 *   agent leaves — `evictAgent` here, or any `AgentEvicted` the runtime
 *   publishes (memory pressure, health failure, shutdown).
 * - A lease found lost on renewal (this host was cut off longer than the
 *   TTL and another host took the agent) evicts the local instance with
 *   `Migration`, which keeps the saved state (the new owner's now), so two
 *   live instances never stay.
 * - `activate` brings an agent to this host from its last snapshot (the
 *   next call after a migration or a failover): held by another host →
 *   `AgentAlreadyExists { owner }`; already held here → `AgentAlreadyExists
 *   { owner: this host }`. Of any number of racing activations across hosts
 *   exactly one succeeds.
 * - `migrate` saves the agent's state, evicts it here with `Migration`
 *   (the saved state stays) and releases the lease, so the next
 *   `activate` on any host continues from that state.
 * - When the layer's scope closes every lease still held is released.
 *
 * The other operations (`invoke`, lifecycle, health, …) are the runtime's:
 * use `runtime`. This is a wrapper, not an `AgentRuntime` layer, because the
 * port's error types have no room for `LeaseError` (NATS unreachable while
 * taking a lease) nor for the owner of an agent held elsewhere.
 *
 * @since 0.1.0
 */
import { AgentRuntime, type AgentConfigShape, type AgentId, type ModuleId } from "@agent-runtime/domain"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { AgentAlreadyExists, type LeaseError, Leases } from "./Leases.js"

type Runtime = AgentRuntime["Service"]
type Fn = (...args: ReadonlyArray<never>) => Effect.Effect<unknown, unknown, unknown>
type SuccessOf<F extends Fn> = ReturnType<F> extends Effect.Effect<infer A, infer _E, infer _R> ? A : never
type ErrorOf<F extends Fn> = ReturnType<F> extends Effect.Effect<infer _A, infer E, infer _R> ? E : never

/** An `AgentRuntime` whose spawns and restores are guarded by a lease (one owner per agent across hosts). */
export interface LeasedRuntimeShape {
  /** The wrapped runtime, for every other operation. */
  readonly runtime: Runtime
  /** Takes the agent's lease, then spawns it here. */
  readonly spawnAgent: (
    agentId: AgentId,
    moduleId: ModuleId,
    config: AgentConfigShape
  ) => Effect.Effect<SuccessOf<Runtime["spawnAgent"]>, ErrorOf<Runtime["spawnAgent"]> | AgentAlreadyExists | LeaseError>
  /** Takes the agent's lease, then activates it here from its last snapshot. */
  readonly restore: (
    agentId: AgentId
  ) => Effect.Effect<SuccessOf<Runtime["restore"]>, ErrorOf<Runtime["restore"]> | AgentAlreadyExists | LeaseError>
  /**
   * Activates the agent here from its last snapshot (after a migration, a
   * passivation elsewhere that released it, or a failover): takes its lease,
   * then `restore`. Fails with `AgentAlreadyExists { owner }` when another
   * host holds it, or this one already does (`owner` = this host).
   */
  readonly activate: (
    agentId: AgentId
  ) => Effect.Effect<SuccessOf<Runtime["restore"]>, ErrorOf<Runtime["restore"]> | AgentAlreadyExists | LeaseError>
  /**
   * Hands the agent over: saves its state (a passivated agent's is saved
   * already), evicts it here with `Migration` (the saved state stays) and
   * releases its lease. The next `activate` on any host continues from the
   * saved state.
   */
  readonly migrate: (
    agentId: AgentId
  ) => Effect.Effect<void, ErrorOf<Runtime["snapshot"]> | ErrorOf<Runtime["evictAgent"]>>
  /** Evicts the agent here and releases its lease. */
  readonly evictAgent: Runtime["evictAgent"]
  /** Agents whose lease this host holds now. */
  readonly held: () => ReadonlyArray<AgentId>
}

/** The `LeasedRuntime` service key. */
export class LeasedRuntime extends Context.Service<LeasedRuntime, LeasedRuntimeShape>()(
  "@agent-runtime/nats/LeasedRuntime"
) {}

/** Builds the wrapper (inside the caller's scope: leases are released when it closes). */
export const make: Effect.Effect<LeasedRuntimeShape, never, AgentRuntime | Leases | Scope.Scope> = Effect.gen(
  function* () {
    const runtime = yield* AgentRuntime
    const leases = yield* Leases
    const outer = yield* Effect.scope
    /** One scope per held lease; closing it stops the renewals and releases. */
    const scopes = new Map<AgentId, Scope.Closeable>()

    /** Releases in progress: a second `releaseLease` of the agent (the eviction's event, the wrapper) waits for it. */
    const releasing = new Map<AgentId, Deferred.Deferred<void>>()
    const releaseLease = (agentId: AgentId) =>
      Effect.suspend(() => {
        const scope = scopes.get(agentId)
        if (scope === undefined) {
          const pending = releasing.get(agentId)
          return pending === undefined ? Effect.void : Deferred.await(pending)
        }
        scopes.delete(agentId)
        const done = Deferred.makeUnsafe<void>()
        releasing.set(agentId, done)
        return Scope.close(scope, Exit.void).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              if (releasing.get(agentId) === done) releasing.delete(agentId)
              Deferred.doneUnsafe(done, Effect.void)
            })
          )
        )
      })

    // spawns and activations through this wrapper are serialised on this host (the runtime serialises
    // them anyway), so two local calls for one agent cannot both take the lease and one release it
    const lock = Semaphore.makeUnsafe(1)

    const guarded = <A, E>(
      agentId: AgentId,
      create: Effect.Effect<A, E>,
      mustTake = false
    ): Effect.Effect<A, E | AgentAlreadyExists | LeaseError> =>
      Effect.gen(function* () {
        const took = !scopes.has(agentId)
        if (!took && mustTake) return yield* new AgentAlreadyExists({ agentId, owner: leases.hostId })
        if (took) {
          const scope = yield* Scope.fork(outer)
          const lease = yield* Scope.provide(leases.hold(agentId), scope).pipe(
            Effect.onError(() => Scope.close(scope, Exit.void))
          )
          scopes.set(agentId, scope)
          // lost on renewal: another host has it now — the local instance must go
          yield* lease.lost.pipe(
            Effect.flatMap((lost) =>
              Effect.logWarning(`${lost.message}: evicting the local instance`).pipe(
                Effect.andThen(Effect.ignore(runtime.evictAgent(agentId, "Migration"))),
                Effect.andThen(releaseLease(agentId))
              )
            ),
            Effect.forkIn(scope)
          )
        }
        // a lease taken for this call goes back if the runtime refuses; one held before stays
        return yield* create.pipe(Effect.onError(() => (took ? releaseLease(agentId) : Effect.void)))
      }).pipe(lock.withPermits(1))

    // evictions the runtime decides itself (pressure, health, shutdown) give the lease back
    const events = yield* runtime.events
    yield* Effect.forkScoped(
      Stream.runForEach(events, (event) => (event._tag === "AgentEvicted" ? releaseLease(event.agentId) : Effect.void))
    )
    yield* Effect.addFinalizer(() => Effect.forEach([...scopes.keys()], releaseLease, { discard: true }))

    return {
      runtime,
      spawnAgent: (agentId, moduleId, config) => guarded(agentId, runtime.spawnAgent(agentId, moduleId, config)),
      restore: (agentId) => guarded(agentId, runtime.restore(agentId)),
      activate: (agentId) => guarded(agentId, runtime.restore(agentId), true),
      migrate: (agentId) =>
        runtime.snapshot(agentId).pipe(
          // passivated (its state was saved when it was released) or not running: what is saved stays
          Effect.catchTag("AgentNotRunning", () => Effect.void),
          Effect.andThen(runtime.evictAgent(agentId, "Migration")),
          Effect.andThen(releaseLease(agentId)),
          lock.withPermits(1)
        ),
      evictAgent: (agentId, reason) => Effect.andThen(runtime.evictAgent(agentId, reason), releaseLease(agentId)),
      held: () => [...scopes.keys()]
    } satisfies LeasedRuntimeShape
  }
)

/** The `LeasedRuntime` layer (needs `AgentRuntime` and `Leases`). */
export const layer: Layer.Layer<LeasedRuntime, never, AgentRuntime | Leases> = Layer.effect(LeasedRuntime, make)
