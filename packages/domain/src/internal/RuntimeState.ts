/**
 * The runtime state record every concept file of `AgentRuntime` works over:
 * the `RuntimeEnvironment` aggregate, the settings, the ports, the aggregate
 * lock, the background fibers and the few counters the runtime keeps beside
 * the aggregate. One record per runtime, made by `make`; the functions in
 * `src/internal/` take it as their first argument.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { AgentInstance, StateChange } from "../AgentInstance.js"
import type { AgentId, EventId, InstanceId, RuntimeId } from "../Ids.js"
import { EventBus, type EventBusShape } from "../EventBus.js"
import { ExecutionAuthorizer, type ExecutionAuthorizerShape } from "../ExecutionAuthorizer.js"
import { InstanceRepository, type InstanceRepositoryShape } from "../InstanceRepository.js"
import { MetricsRepository, type MetricsRepositoryShape } from "../MetricsRepository.js"
import { ModuleRepository, type ModuleRepositoryShape } from "../ModuleRepository.js"
import { ModuleVerifier, type ModuleVerifierShape } from "../ModuleVerifier.js"
import { ResourcePoolConfig } from "../ResourcePool.js"
import {
  type CompileError,
  InvalidConfig,
  type InvalidStateTransition,
  type ResourceExhausted,
  RuntimeUnavailable
} from "../RuntimeError.js"
import { RuntimeEnvironment } from "../RuntimeEnvironment.js"
import { AgentStateChanged, type RuntimeEvent } from "../RuntimeEvent.js"
import { resolveSettings, type RuntimeSettings, type SettingsInput } from "../RuntimeSettings.js"
import { PlatformServices } from "../RuntimePlatform.js"
import { acceptsWork } from "../RuntimeStatus.js"
import { type CompiledModule, WasmEngine, type WasmEngineShape } from "../WasmEngine.js"
import type { RestoreResult } from "./ReadModels.js"
import * as Sha256 from "./Sha256.js"

/** The ports the runtime needs. */
export type RuntimePorts =
  | WasmEngine
  | ModuleVerifier
  | ExecutionAuthorizer
  | ModuleRepository
  | InstanceRepository
  | MetricsRepository
  | EventBus

/**
 * Why a runtime cannot start: its pool cannot hold the engine's worker
 * threads (`ResourceExhausted { resource: "threads" }`; see
 * `ResourcePoolConfig`), or `pool.maxThreads` is not a non-negative integer
 * (`InvalidConfig`).
 */
export type StartError = InvalidConfig | ResourceExhausted

/** One runtime's state: the aggregate, its settings and ports, and what the runtime keeps beside it. */
export interface RuntimeState {
  readonly id: RuntimeId
  readonly settings: RuntimeSettings
  readonly env: RuntimeEnvironment
  readonly engine: WasmEngineShape
  readonly verifier: ModuleVerifierShape
  readonly authorizer: ExecutionAuthorizerShape
  readonly moduleRepo: ModuleRepositoryShape
  readonly instanceRepo: InstanceRepositoryShape
  readonly metricsRepo: MetricsRepositoryShape
  readonly bus: EventBusShape
  readonly clock: Clock.Clock
  /** How module bytes are hashed: the platform's SHA-256 when `PlatformServices.sha256Hex` is provided, else the fallback. */
  readonly hasher: Sha256.Hasher
  /** Background work (pressure handling, evictions after a failed call, maintenance, consumed events). */
  readonly fibers: FiberSet.FiberSet<unknown, unknown>
  /** Runs an effect under the aggregate lock (one structural change at a time). */
  readonly locked: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Whether no effect holds the aggregate lock right now: then a synchronous
   * change may run without taking it — no structural change is in flight and
   * a synchronous step cannot be interleaved (`Spawning`'s claim).
   */
  readonly lockFree: () => boolean
  /** Compiles in flight, by cache key: concurrent misses of one key share one compile. */
  readonly inflight: Map<string, Deferred.Deferred<CompiledModule, CompileError>>
  /** Whether agents' states live in the `InstanceRepository` (any persistence setting). */
  readonly persistent: boolean
  /**
   * This runtime instance's nonce (8 hex digits from Effect's `Random`, drawn
   * when the runtime is built), so event ids stay unique across processes
   * and restarts that reuse one runtime id (JetStream de-duplicates by id).
   */
  readonly nonce: string
  /** Sequence of event ids (`<runtimeId>:<nonce>:<n>`). */
  eventSeq: number
  /** Sequence of instance ids (`<agentId>#<n>`). */
  instanceSeq: number
  /** A pressure handling is queued or running. */
  pressureScheduled: boolean
  /** What `restoreOnStart` brought back (and what it could not, with reasons). */
  startRestore: RestoreResult | undefined
}

/**
 * Builds the state over the ports in context; the aggregate starts `Ready`.
 * The settings are `input` over the program's `ResourcePoolConfig` (pool)
 * and the defaults. The engine's worker threads are taken from the pool
 * until the scope closes (`takeEngineThreads`).
 */
export const makeState = (input: SettingsInput): Effect.Effect<RuntimeState, StartError, RuntimePorts | Scope.Scope> =>
  Effect.gen(function* () {
    const settings = resolveSettings(input, yield* ResourcePoolConfig)
    const engine = yield* WasmEngine
    const id = (settings.id ??
      `rt-${(yield* Random.nextIntBetween(0, 0x7fffffff)).toString(16).padStart(8, "0")}`) as RuntimeId
    const startedAt = yield* Clock.currentTimeMillis
    const env = new RuntimeEnvironment(
      id,
      settings.name,
      engine.platform,
      settings.pool,
      settings.cacheMaxBytes,
      startedAt
    )
    yield* takeEngineThreads(env, engine)
    env.status = "Ready"
    const lock = Semaphore.makeUnsafe(1)
    let holders = 0
    const released = Effect.sync(() => void holders--)
    const { persistence } = settings
    return {
      id,
      settings,
      env,
      engine,
      verifier: yield* ModuleVerifier,
      authorizer: yield* ExecutionAuthorizer,
      moduleRepo: yield* ModuleRepository,
      instanceRepo: yield* InstanceRepository,
      metricsRepo: yield* MetricsRepository,
      bus: yield* EventBus,
      clock: yield* Clock.Clock,
      hasher: Sha256.hasher((yield* PlatformServices).sha256Hex),
      fibers: yield* FiberSet.make<unknown, unknown>(),
      locked: (effect) =>
        lock.withPermits(1)(
          Effect.suspend(() => {
            holders++
            return Effect.ensuring(effect, released)
          })
        ),
      lockFree: () => holders === 0,
      inflight: new Map(),
      persistent:
        persistence.snapshotAfterCalls === true ||
        persistence.snapshotIntervalMs !== undefined ||
        persistence.restoreOnStart === true,
      nonce: (yield* Random.nextIntBetween(0, 0x7fffffff)).toString(16).padStart(8, "0"),
      eventSeq: 0,
      instanceSeq: 0,
      pressureScheduled: false,
      startRestore: undefined
    }
  })

/**
 * One thread setting, enforced (`ResourcePoolConfig.maxThreads`): takes the
 * engine's worker threads (`WasmEngineShape.threads`, 0 when absent) from the
 * pool and gives them back when the scope closes. A `maxThreads` that is not
 * a non-negative integer → `InvalidConfig`; an engine running more threads
 * than the pool allows → `ResourceExhausted { resource: "threads", requested,
 * available }`.
 */
export const takeEngineThreads = (
  env: RuntimeEnvironment,
  engine: WasmEngineShape
): Effect.Effect<void, StartError, Scope.Scope> =>
  Effect.suspend((): Effect.Effect<void, StartError, Scope.Scope> => {
    const { maxThreads } = env.pool
    if (!Number.isSafeInteger(maxThreads) || maxThreads < 0) {
      return Effect.fail(
        new InvalidConfig({ reason: `pool.maxThreads must be a non-negative integer, got ${String(maxThreads)}` })
      )
    }
    const threads = engine.threads ?? 0
    if (threads === 0) return Effect.void
    const refused = env.pool.acquireThreads(threads)
    return refused === undefined
      ? Effect.addFinalizer(() => Effect.sync(() => env.pool.releaseThreads(threads)))
      : Effect.fail(refused)
  })

/** The envelope of an event published now: id, timestamp (ms since the epoch), runtime. */
export interface Envelope {
  readonly eventId: EventId
  readonly timestamp: number
  readonly runtimeId: RuntimeId
}

/** Publishes the event `f` makes from a fresh envelope. */
export const emit = (state: RuntimeState, f: (e: Envelope) => RuntimeEvent): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => state.bus.publish(f(envelope(state, now))))

/** A fresh envelope stamped `now` (ms since the epoch, read from the runtime's `Clock` by the caller). */
export const envelope = (state: RuntimeState, now: number): Envelope => ({
  eventId: `${state.id}:${state.nonce}:${++state.eventSeq}` as EventId,
  timestamp: now,
  runtimeId: state.id
})

/**
 * A runtime event built from fields the runtime already holds typed (its
 * ids, numbers, a module's export names): an instance of the event's Schema
 * class — same prototype, `_tag`, fields and key order (so the same JSON) as
 * `new C(fields)` — without the constructor's per-field parse, which for
 * `ModuleLoaded` parsed every export name (≈ 0.85 µs each: 60 ms for a module
 * with 75 000 exports, on every load, cache hits included). Events that come
 * from outside (the bus, the wire) are still decoded through their schema.
 * `C` is one of `RuntimeEvent`'s `Schema.TaggedClass`es (its `identifier` is its `_tag`).
 */
export const trustedEvent = <C extends TrustedEventClass>(
  C: C,
  fields: Omit<ConstructorParameters<C>[0], "_tag">
): InstanceType<C> => {
  const event = Object.create(C.prototype) as Record<string, unknown>
  event._tag = C.identifier
  return copyFields(event, fields) as InstanceType<C>
}

/**
 * `trustedEvent` with a fresh envelope (`envelope`: id, `now` in ms since the
 * epoch, runtime) written field by field, then `fields` in their order: the
 * same keys, in the same order, as `trustedEvent(C, { ...envelope(state, now),
 * ...fields })`, without the object spreads — on Node 20 (V8 11.3) an object
 * literal spread followed by more fields measured 3–14 µs per event on this
 * project's machine, against ≈ 0.1–0.2 µs written this way (the spawn path
 * builds two events per agent).
 */
export const stampedEvent = <C extends TrustedEventClass>(
  state: RuntimeState,
  C: C,
  now: number,
  fields: Omit<ConstructorParameters<C>[0], "_tag" | keyof Envelope>
): InstanceType<C> => {
  const event = Object.create(C.prototype) as Record<string, unknown>
  event._tag = C.identifier
  event.eventId = `${state.id}:${state.nonce}:${++state.eventSeq}`
  event.timestamp = now
  event.runtimeId = state.id
  return copyFields(event, fields) as InstanceType<C>
}

/** Copies the own enumerable fields of `fields` onto `target` in their order (no `Object.assign`: slower here). */
const copyFields = (target: Record<string, unknown>, fields: object): Record<string, unknown> => {
  const source = fields as Record<string, unknown>
  for (const key in source) if (Object.hasOwn(source, key)) target[key] = source[key]
  return target
}

/** What `trustedEvent` needs of an event class. */
type TrustedEventClass = (new (fields: any) => RuntimeEvent) & { readonly identifier: string }

/** Publishes `AgentStateChanged` for a change (nothing when the state stayed the same). */
export const emitChange = (state: RuntimeState, agentId: AgentId, change: StateChange): Effect.Effect<void> =>
  change.from === change.to
    ? Effect.void
    : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        state.bus.publish(stampedEvent(state, AgentStateChanged, now, { agentId, from: change.from, to: change.to }))
      )

/** Applies one of the instance's transitions: publishes the change, or fails with `InvalidStateTransition`. */
export const applyTransition = (
  state: RuntimeState,
  i: AgentInstance,
  move: (i: AgentInstance) => StateChange | InvalidStateTransition
): Effect.Effect<StateChange, InvalidStateTransition> =>
  Effect.suspend(() => {
    const change = move(i)
    return "_tag" in change ? Effect.fail(change) : Effect.as(emitChange(state, i.agentId, change), change)
  })

/** Fails with `RuntimeUnavailable` once the runtime is shutting down. */
export const ensureAccepting = (state: RuntimeState): Effect.Effect<void, RuntimeUnavailable> =>
  Effect.suspend(() =>
    acceptsWork(state.env.status) ? Effect.void : Effect.fail(new RuntimeUnavailable({ status: state.env.status }))
  )

/** A fresh instance id for an agent (`<agentId>#<n>`). */
export const nextInstanceId = (state: RuntimeState, agentId: AgentId): InstanceId =>
  `${agentId}#${++state.instanceSeq}` as InstanceId

/** The message of an error or a cause, for `lastError` and failure reasons. */
export const errorText = (e: unknown): string =>
  e !== null && typeof e === "object" && "message" in e ? String((e as { message: unknown }).message) : String(e)
