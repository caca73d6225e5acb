/**
 * What every conformance case runs on: a real `AgentRuntime` (in-memory
 * ports from `AgentRuntimes.layerMemory`) over the engine under test, a real
 * ed25519 `ModuleVerifier` trusting the TEST-ONLY key, and the real signed
 * agents.
 *
 * The engine is wrapped in a transparent *spy* that delegates every call to
 * the real engine and records what the runtime asked of it (compiles,
 * invocations, lifecycle calls) and keeps each agent's real instance, so a
 * case can ask the guest itself what happened (e.g. `cleanups_count` after
 * the runtime stopped an agent). The spy changes no behaviour.
 *
 * @since 0.1.0
 */
import {
  type AgentConfigShape,
  type AgentInfo,
  AgentRuntime,
  AgentRuntimes,
  type AgentRuntimeShape,
  agentId,
  type EngineCapabilities,
  EventBus,
  InstanceRepository,
  makeMetadata,
  MetricsRepository,
  type ModuleId,
  type ModuleVerifier,
  type RuntimeEvent,
  type SettingsInput,
  WasmEngine,
  type WasmEngineShape,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import type { AgentName, Fixtures } from "./Fixtures.js"

/** 1 MiB in bytes. */
export const MiB = 1_048_576
/** 1 WebAssembly page (64 KiB) in bytes. */
export const PAGE = 65_536

/** What the spy saw. Agent ids as strings; `ok` is whether the engine call succeeded. */
export interface EngineSpy {
  /** Module hashes compiled by the engine, in order (one entry per real compile). */
  readonly compiles: Array<string>
  /** Module byte lengths validated (engines with `validate`), in order. */
  readonly validations: Array<number>
  /** Every call the runtime made into an instance (exports, lifecycle functions). */
  readonly calls: Array<{ readonly agentId: string; readonly fn: string; readonly ok: boolean }>
  /** The latest real instance of each agent. */
  readonly instances: Map<string, WasmInstance>
  /**
   * Results of probe calls made right after a lifecycle call succeeded (see
   * `probeAfter`), e.g. `cleanups_count` right after `_cleanup`.
   */
  readonly probes: Array<{
    readonly agentId: string
    readonly after: string
    readonly fn: string
    readonly results: ReadonlyArray<WasmValue>
  }>
  /**
   * Per agent id, an effect the spy runs before each engine call of that
   * agent (e.g. `Deferred.await`): holds a call in flight — and the agent's
   * mailbox with it — on every engine, so a case can race it.
   */
  readonly holds: Map<string, Effect.Effect<void>>
}

/** Calls `fn` on the instance right after the runtime's call of the key succeeded (missing exports are ignored). */
const probeAfter: Readonly<Record<string, ReadonlyArray<string>>> = {
  _cleanup: ["cleanups_count", "initialized"],
  _recover: ["recoveries_count"]
}

export const makeSpy = (): EngineSpy => ({
  compiles: [],
  validations: [],
  calls: [],
  instances: new Map(),
  probes: [],
  holds: new Map()
})

/** The calls of one agent's function the spy saw. */
export const callsOf = (spy: EngineSpy, agent: string, fn: string) =>
  spy.calls.filter((c) => c.agentId === agent && c.fn === fn)

const wrapInstance = (spy: EngineSpy, agent: string, inst: WasmInstance): WasmInstance => ({
  invoke: (fn, args, options) =>
    Effect.onExit(
      Effect.andThen(
        Effect.suspend(() => spy.holds.get(agent) ?? Effect.void),
        inst.invoke(fn, args, options)
      ),
      (exit) =>
        Effect.gen(function* () {
          spy.calls.push({ agentId: agent, fn, ok: exit._tag === "Success" })
          if (exit._tag !== "Success") return
          for (const probe of probeAfter[fn] ?? []) {
            const r = yield* Effect.result(inst.invoke(probe, []))
            if (r._tag === "Success")
              spy.probes.push({ agentId: agent, after: fn, fn: probe, results: r.success.results })
          }
        })
    ),
  get memoryBytes() {
    return inst.memoryBytes
  },
  readMemory: (offset, length) => inst.readMemory(offset, length),
  writeMemory: (offset, bytes) => inst.writeMemory(offset, bytes),
  get snapshot() {
    return inst.snapshot
  },
  restore: (state) => inst.restore(state),
  get terminate() {
    return inst.terminate
  }
})

/** The engine under test, wrapped by the spy. */
export const spyLayer = (engineLayer: Layer.Layer<WasmEngine>, spy: EngineSpy): Layer.Layer<WasmEngine> =>
  Layer.effect(
    WasmEngine,
    Effect.gen(function* () {
      const engine = yield* WasmEngine
      const wrapped: WasmEngineShape = {
        platform: engine.platform,
        capabilities: engine.capabilities,
        threads: engine.threads,
        validate:
          engine.validate === undefined
            ? undefined
            : (bytes) =>
                Effect.tap(engine.validate!(bytes), () =>
                  Effect.sync(() => void spy.validations.push(bytes.byteLength))
                ),
        compile: (bytes, hash) =>
          Effect.tap(engine.compile(bytes, hash), () => Effect.sync(() => void spy.compiles.push(hash))),
        instantiate: (module, options) =>
          Effect.map(engine.instantiate(module, options), (inst) => {
            const w = wrapInstance(spy, options.agentId, inst)
            spy.instances.set(options.agentId, inst)
            return w
          })
      }
      return wrapped
    })
  ).pipe(Layer.provide(engineLayer))

/** The capabilities of an engine layer (builds it once in its own scope). */
export const capabilitiesOf = (engineLayer: Layer.Layer<WasmEngine>): Promise<EngineCapabilities> =>
  Effect.runPromise(
    Effect.scoped(Effect.map(Layer.build(engineLayer), (context) => Context.get(context, WasmEngine).capabilities))
  )

/** Merges case settings over the suite's base settings (nested pool/health/gc/maintenance too). */
export const mergeSettings = (base: SettingsInput, over: SettingsInput): SettingsInput => ({
  ...base,
  ...over,
  pool: { ...base.pool, ...over.pool },
  health: { ...base.health, ...over.health },
  gc: { ...base.gc, ...over.gc },
  maintenance: { ...base.maintenance, ...over.maintenance }
})

/** The verifier: the TEST-ONLY trust store, unsigned modules refused unless asked. */
export const verifierLayer = (options: Partial<Signing.VerifierOptions> = {}): Layer.Layer<ModuleVerifier> =>
  Signing.layer({
    trustStore: options.trustStore ?? testOnlyTrustStore(),
    allowUnsigned: options.allowUnsigned ?? false
  })

/** The services a case body may use. */
export type CaseServices = AgentRuntime | EventBus | InstanceRepository | MetricsRepository | Scope.Scope

/** Collected runtime events. */
export interface EventLog {
  /** Every event received so far, in publication order. */
  readonly all: () => ReadonlyArray<RuntimeEvent>
  /** The events of one tag. */
  readonly of: <T extends RuntimeEvent["_tag"]>(tag: T) => ReadonlyArray<Extract<RuntimeEvent, { readonly _tag: T }>>
}

/** One case's runtime and helpers. */
export interface TestRuntime {
  readonly rt: AgentRuntimeShape
  readonly spy: EngineSpy
  readonly caps: EngineCapabilities
  /** Loads a fixture agent with its name and version as metadata. */
  readonly load: (name: AgentName) => ReturnType<AgentRuntimeShape["loadModule"]>
  /** Loads (or reuses) a fixture's module and spawns `id` from it; memoryLimit defaults to 16 MiB. */
  readonly spawn: (
    id: string,
    name: AgentName,
    config?: Partial<AgentConfigShape>
  ) => Effect.Effect<
    AgentInfo,
    | Effect.Error<ReturnType<AgentRuntimeShape["loadModule"]>>
    | Effect.Error<ReturnType<AgentRuntimeShape["spawnAgent"]>>
  >
  /** `rt.invoke` with a string id. */
  readonly call: (id: string, fn: string, args?: ReadonlyArray<WasmValue>) => ReturnType<AgentRuntimeShape["invoke"]>
  /** `rt.agent` with a string id. */
  readonly info: (id: string) => ReturnType<AgentRuntimeShape["agent"]>
  /** Subscribes now and collects every later event (until the case's scope closes). */
  readonly collect: Effect.Effect<EventLog, never, Scope.Scope>
  /** Lets forked fibers (event collectors, pressure handling) run. */
  readonly settle: Effect.Effect<void>
}

export interface RunOptions {
  readonly settings?: SettingsInput | undefined
  readonly verifier?: Partial<Signing.VerifierOptions> | undefined
}

/** Lets other fibers run: a few scheduler turns. */
export const settle: Effect.Effect<void> = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

/**
 * Waits until `check` holds: lets fibers run, then gives the host's event loop
 * a real millisecond (`TestClock.withLive`) for work the engine finishes off
 * the Effect scheduler (e.g. an asynchronous `WebAssembly.compile`). Dies
 * after ~2 s of real time.
 */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>): Effect.Effect<void, E, R> =>
  Effect.gen(function* () {
    for (let i = 0; i < 2000; i++) {
      yield* settle
      if (yield* check) return
      yield* TestClock.withLive(Effect.sleep(1))
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

/** Builds the runtime of one case and runs `body` with it; everything is released when the body ends. */
export const makeRunner =
  (input: {
    readonly engineLayer: Layer.Layer<WasmEngine>
    readonly caps: () => EngineCapabilities
    readonly fixtures: Fixtures
    readonly settings: SettingsInput
  }) =>
  <A, E>(
    body: (t: TestRuntime) => Effect.Effect<A, E, CaseServices>,
    options: RunOptions = {}
  ): Effect.Effect<A, E> => {
    const spy = makeSpy()
    const settings = mergeSettings(mergeSettings({ id: "rt-conformance" }, input.settings), options.settings ?? {})
    const layer = AgentRuntimes.layerMemory(settings).pipe(
      Layer.provide(Layer.mergeAll(spyLayer(input.engineLayer, spy), verifierLayer(options.verifier))),
      Layer.orDie // a runtime that cannot start (more engine threads than its pool allows) is a broken harness
    )
    return Effect.scoped(
      Effect.gen(function* () {
        const rt = yield* AgentRuntime
        const modules = new Map<AgentName, ModuleId>()
        const load: TestRuntime["load"] = (name) =>
          Effect.gen(function* () {
            const bytes = yield* input.fixtures.bytes(name)
            const id = yield* rt.loadModule(bytes, makeMetadata({ name, version: input.fixtures.version(name) }))
            modules.set(name, id)
            return id
          })
        const t: TestRuntime = {
          rt,
          spy,
          caps: input.caps(),
          load,
          spawn: (id, name, config = {}) =>
            Effect.gen(function* () {
              const moduleId = modules.get(name) ?? (yield* load(name))
              return yield* rt.spawnAgent(agentId(id), moduleId, { memoryLimit: 16 * MiB, ...config })
            }),
          call: (id, fn, args = []) => rt.invoke(agentId(id), fn, args),
          info: (id) => rt.agent(agentId(id)),
          collect: Effect.gen(function* () {
            const events: Array<RuntimeEvent> = []
            const stream = yield* rt.events
            yield* Effect.forkScoped(Stream.runForEach(stream, (e) => Effect.sync(() => void events.push(e))))
            yield* settle
            return {
              all: () => events,
              of: <T extends RuntimeEvent["_tag"]>(tag: T) =>
                events.filter((e): e is Extract<RuntimeEvent, { readonly _tag: T }> => e._tag === tag)
            }
          }),
          settle
        }
        return yield* body(t)
      })
    ).pipe(Effect.provide(layer))
  }

/** The runner type. */
export type Runner = ReturnType<typeof makeRunner>
