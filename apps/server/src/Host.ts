/**
 * `Host`: the server's services over one runtime — spawn, evict, invoke,
 * health, agents, modules, events — shared by the HTTP API and the NATS
 * endpoints, with the drain that graceful shutdown needs.
 *
 * - A spawn of a module this runtime has not loaded but the
 *   `ModuleRepository` holds (shared by every host on NATS) loads it from
 *   there first, verifying its signature again.
 * - NATS mode: an invoke of an agent not live here activates it here from
 *   its last snapshot first (`LeasedRuntime.activate`: after a migration, or
 *   a failover once the dead owner's lease expired); held by another live
 *   host → `AgentAlreadyExists { owner }`.
 * - Spawns go through `LeasedRuntime` when the server runs on NATS (one
 *   owner per agent across hosts: an agent held by another host →
 *   `AgentAlreadyExists { owner }`), else straight to the runtime
 *   (`owner` is this host).
 * - Every call is counted in flight; `drain` refuses new calls with
 *   `ServerDraining` (503), ends the event streams, waits for the calls in
 *   flight (up to `timeoutMs`), then saves every live agent's state
 *   (`AgentRuntime.saveAll`). Leases, the runtime and the NATS connection
 *   are released afterwards by their layers' scopes.
 * - Every failed call is counted in `ServerMetrics` by its error tag; each
 *   invoke's latency (ms) goes to the latency histogram.
 *
 * Errors: `Wire.ServiceError` (the domain's tagged errors, `ServerDraining`,
 * `LeaseUnavailable`, `InvalidRequest`).
 *
 * @since 0.1.0
 */
import * as D from "@agent-runtime/domain"
import { LeasedRuntime } from "@agent-runtime/nats"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Scope from "effect/Scope"
import { ServerMetrics } from "./ServerMetrics.js"
import * as Wire from "./Wire.js"

/** The services of one host. */
export interface HostShape {
  readonly hostId: string
  readonly runtime: D.AgentRuntimeShape
  /** True once `drain` began. */
  readonly draining: () => boolean
  /** Calls in flight now. */
  readonly inFlight: () => number
  readonly spawn: (request: Wire.SpawnRequest) => Effect.Effect<Wire.AgentView, Wire.ServiceError>
  readonly evict: (
    agentId: string,
    reason: D.EvictionReason
  ) => Effect.Effect<typeof Wire.Evicted.Type, Wire.ServiceError>
  readonly invoke: (
    agentId: string,
    fn: string,
    args: ReadonlyArray<Wire.WireValue>
  ) => Effect.Effect<typeof Wire.InvokeResult.Type, Wire.ServiceError>
  readonly agentHealth: (agentId: string) => Effect.Effect<Wire.AgentHealth, Wire.ServiceError>
  readonly runtimeHealth: Effect.Effect<Wire.RuntimeHealth>
  readonly agents: Effect.Effect<ReadonlyArray<Wire.AgentView>>
  readonly agent: (agentId: string) => Effect.Effect<Wire.AgentView, Wire.ServiceError>
  readonly loadModule: (upload: Wire.ModuleUpload) => Effect.Effect<Wire.ModuleView, Wire.ServiceError>
  readonly modules: Effect.Effect<ReadonlyArray<Wire.ModuleView>, Wire.ServiceError>
  /** The runtime's events from now on; ends when a drain begins. */
  readonly events: Effect.Effect<Stream.Stream<D.RuntimeEvent>, never, Scope.Scope>
  /** Liveness: fails with `ServerDraining` once a drain began. */
  readonly alive: Effect.Effect<void, Wire.ServerDraining>
  /**
   * Stops taking calls, ends event streams, waits for the calls in flight
   * (at most `timeoutMs`), then saves every live agent. Returns the calls
   * still in flight when it stopped waiting (0 when all finished). Idempotent.
   */
  readonly drain: (timeoutMs: number) => Effect.Effect<number>
}

/** The `Host` service key. */
export class Host extends Context.Service<Host, HostShape>()("@agent-runtime/server/Host") {}

/** What `make` needs. */
export interface Options {
  /** This host's id (lease owner, NATS subject token, `owner` of `AgentAlreadyExists`). */
  readonly hostId: string
}

const toBytes = (base64: string): Uint8Array | undefined => {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(base64)) return undefined
  return new Uint8Array(Buffer.from(base64, "base64"))
}

/**
 * Builds the host over the runtime and module repository in context, and
 * the `LeasedRuntime` when there is one (NATS mode).
 */
export const make = (
  options: Options
): Effect.Effect<HostShape, never, D.AgentRuntime | D.ModuleRepository | ServerMetrics> =>
  Effect.gen(function* () {
    const runtime = yield* D.AgentRuntime
    const repository = yield* D.ModuleRepository
    const metrics = yield* ServerMetrics
    const { hostId } = options
    const leased = Option.getOrUndefined(yield* Effect.serviceOption(LeasedRuntime.LeasedRuntime))
    const drained = yield* Deferred.make<void>()
    let draining = false
    let inFlight = 0
    const idleWaiters = new Set<() => void>()

    /** Runs a call counted in flight; refused while draining; counts its error by tag. */
    const track = <A, E extends { readonly _tag: string }>(
      call: Effect.Effect<A, E>
    ): Effect.Effect<A, E | Wire.ServerDraining> =>
      Effect.suspend((): Effect.Effect<A, E | Wire.ServerDraining> => {
        if (draining) return Effect.fail(new Wire.ServerDraining({ hostId }))
        inFlight++
        return call.pipe(
          Effect.tapError((e) => metrics.observeError(e._tag)),
          Effect.ensuring(
            Effect.sync(() => {
              inFlight--
              if (inFlight === 0) for (const wake of idleWaiters) wake()
            })
          )
        )
      })

    const wireLease = (e: { readonly _tag: string }): Wire.AgentAlreadyExists | Wire.LeaseUnavailable => {
      const f = e as unknown as { agentId: string; owner?: string; operation: string; reason: string }
      return e._tag === "AgentAlreadyExists"
        ? new Wire.AgentAlreadyExists({ agentId: String(f.agentId), owner: f.owner ?? hostId })
        : new Wire.LeaseUnavailable({ operation: f.operation, agentId: f.agentId, reason: f.reason })
    }

    /** The domain's and the lease table's errors in their wire form. */
    const wire = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, Wire.ServiceError> =>
      Effect.mapError(effect, (e): Wire.ServiceError => {
        const error = e as { readonly _tag: string; readonly agentId?: string; readonly owner?: string }
        if (error._tag === "AgentAlreadyExists") {
          return new Wire.AgentAlreadyExists({ agentId: String(error.agentId), owner: error.owner ?? hostId })
        }
        if (error._tag === "LeaseError") {
          const l = e as unknown as { operation: string; agentId: string; reason: string }
          return new Wire.LeaseUnavailable({ operation: l.operation, agentId: l.agentId, reason: l.reason })
        }
        return e as Wire.ServiceError
      })

    /**
     * A module in the repository (another host loaded it, or an earlier run)
     * but not in this runtime is loaded from there — verified again — before
     * a spawn; a module in neither stays `ModuleNotFound` (from the spawn).
     */
    const ensureModule = (moduleId: D.ModuleId) =>
      Effect.catchTag(Effect.asVoid(runtime.getModule(moduleId)), "ModuleNotFound", () =>
        repository.load(moduleId).pipe(
          Effect.flatMap((stored) => runtime.loadModule(stored.bytes, stored.metadata)),
          Effect.catchTag("ModuleNotFound", () => Effect.void),
          Effect.asVoid
        )
      )

    /**
     * NATS mode: a call for an agent that is not live here activates it here
     * from its last snapshot (after a migration, or a failover once the dead
     * owner's lease expired), then runs again. Held by another live host →
     * `AgentAlreadyExists { owner }`; nothing saved → the call's `AgentNotFound`.
     */
    const activating = <A, E>(
      id: D.AgentId,
      call: Effect.Effect<A, E>
    ): Effect.Effect<A, E | Wire.AgentAlreadyExists | Wire.LeaseUnavailable> =>
      leased === undefined
        ? call
        : Effect.catchIf(
            call,
            (e): e is E => (e as { _tag?: string })._tag === "AgentNotFound",
            (notFound) =>
              leased.activate(id).pipe(
                Effect.matchEffect({
                  onFailure: (e): Effect.Effect<A, E | Wire.AgentAlreadyExists | Wire.LeaseUnavailable> =>
                    e._tag === "AgentAlreadyExists" || e._tag === "LeaseError"
                      ? Effect.fail(wireLease(e))
                      : Effect.fail(notFound),
                  onSuccess: () => call
                })
              )
          )

    const spawn = (request: Wire.SpawnRequest) =>
      track(
        wire(
          Effect.gen(function* () {
            const config: D.AgentConfigShape = {
              memoryLimit: request.memoryLimit,
              ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
              ...(request.fuel === undefined ? {} : { fuel: request.fuel }),
              ...(request.critical === undefined ? {} : { critical: request.critical })
            }
            const id = D.agentId(request.agentId)
            const moduleId = D.moduleId(request.moduleId)
            yield* ensureModule(moduleId)
            const info =
              leased === undefined
                ? yield* runtime.spawnAgent(id, moduleId, config)
                : yield* leased.spawnAgent(id, moduleId, config)
            return Wire.agentView(info)
          })
        )
      )

    const evict = (agentId: string, reason: D.EvictionReason) =>
      track(
        wire(
          Effect.gen(function* () {
            const id = D.agentId(agentId)
            yield* leased === undefined ? runtime.evictAgent(id, reason) : leased.evictAgent(id, reason)
            return { agentId, reason }
          })
        )
      )

    const invoke = (agentId: string, fn: string, args: ReadonlyArray<Wire.WireValue>) =>
      Effect.suspend(() => {
        if (draining) return Effect.fail(new Wire.ServerDraining({ hostId }))
        const values = Wire.toWasmValues(args)
        if (typeof values === "number") {
          return track(
            Effect.fail(
              new Wire.InvalidRequest({
                endpoint: "invoke",
                reason: `args[${values}]: expected a number or an i64 as a decimal string`
              })
            )
          )
        }
        inFlight++
        return Effect.gen(function* () {
          const start = yield* Clock.currentTimeNanos
          const observe = (errorTag: string | undefined) =>
            Effect.flatMap(Clock.currentTimeNanos, (end) => metrics.observeCall(Number(end - start) / 1e6, errorTag))
          return yield* wire(activating(D.agentId(agentId), runtime.invoke(D.agentId(agentId), fn, values))).pipe(
            Effect.tapError((e) => observe(e._tag)),
            Effect.tap(() => observe(undefined))
          )
        }).pipe(
          Effect.map((results) => ({ results: Wire.fromWasmValues(results) })),
          Effect.ensuring(
            Effect.sync(() => {
              inFlight--
              if (inFlight === 0) for (const wake of idleWaiters) wake()
            })
          )
        )
      })

    const agentHealth = (agentId: string) =>
      track(wire(Effect.map(runtime.getHealth(D.agentId(agentId)), Wire.agentHealth)))

    const runtimeHealth = Effect.gen(function* () {
      const stats = yield* runtime.stats
      const infos = yield* runtime.agents
      const checks: Array<Wire.AgentHealth> = []
      for (const info of infos) {
        const check = yield* Effect.option(runtime.getHealth(info.agentId))
        if (check._tag === "Some") checks.push(Wire.agentHealth(check.value))
      }
      return {
        hostId,
        runtimeId: runtime.id,
        status: stats.status,
        draining,
        inFlight,
        agents: stats.agents,
        memory: {
          total: stats.memory.total,
          reserved: stats.memory.reserved,
          used: stats.memory.used,
          pressureLevel: stats.memory.pressureLevel
        },
        checks
      }
    })

    const loadModule = (upload: Wire.ModuleUpload) =>
      track(
        wire(
          Effect.gen(function* () {
            const bytes = toBytes(upload.wasm)
            if (bytes === undefined || bytes.length === 0) {
              return yield* Effect.fail(
                new Wire.InvalidRequest({ endpoint: "modules", reason: "wasm: expected the module bytes in base64" })
              )
            }
            const moduleId = yield* runtime.loadModule(
              bytes,
              D.makeMetadata({ name: upload.name, version: upload.version })
            )
            const module = yield* runtime.getModule(moduleId)
            return {
              moduleId,
              name: module.metadata.name,
              version: module.metadata.version,
              size: module.bytes.length,
              exports: module.exports.map((e) => e.name)
            }
          })
        )
      )

    const modules = track(
      wire(
        Effect.map(repository.list, (list) =>
          list.map((m) => ({ moduleId: m.id, name: m.metadata.name, version: m.metadata.version }))
        )
      )
    )

    const drain = (timeoutMs: number) =>
      Effect.gen(function* () {
        if (!draining) {
          draining = true
          yield* Deferred.succeed(drained, undefined)
          yield* Effect.logInfo(`draining host ${hostId}: ${inFlight} call(s) in flight`)
        }
        if (inFlight > 0) {
          yield* Effect.callback<void>((resume) => {
            const wake = () => resume(Effect.void)
            idleWaiters.add(wake)
            if (inFlight === 0) wake()
            return Effect.sync(() => idleWaiters.delete(wake))
          }).pipe(Effect.timeoutOption(timeoutMs))
        }
        const left = inFlight
        yield* runtime.saveAll
        yield* Effect.logInfo(`host ${hostId} drained: ${left} call(s) left in flight, agents saved`)
        return left
      })

    return {
      hostId,
      runtime,
      draining: () => draining,
      inFlight: () => inFlight,
      spawn,
      evict,
      invoke,
      agentHealth,
      runtimeHealth,
      agents: Effect.map(runtime.agents, (infos) => infos.map(Wire.agentView)),
      agent: (agentId) => track(wire(Effect.map(runtime.agent(D.agentId(agentId)), Wire.agentView))),
      loadModule,
      modules,
      events: Effect.map(runtime.events, Stream.interruptWhen(Deferred.await(drained))),
      alive: Effect.suspend(() => (draining ? Effect.fail(new Wire.ServerDraining({ hostId })) : Effect.void)),
      drain
    } satisfies HostShape
  })

/** The `Host` layer. */
export const layer = (
  options: Options
): Layer.Layer<Host, never, D.AgentRuntime | D.ModuleRepository | ServerMetrics> => Layer.effect(Host, make(options))
