/**
 * The runtime as a user wires it: `AgentRuntimes.layerMemory(settings)` over
 * the native engine and the ed25519 verifier trusting the project's
 * TEST-ONLY key (signed agents verify; unsigned WAT and reference modules
 * are accepted through `allowUnsigned`), run by a `ManagedRuntime`; and the
 * Promise facade (`createRuntime`) on the same layers. The engine is the
 * native engine unless `withEngine` names another for the duration of a run
 * (`pnpm bench -- --adapter ./my-engine.mjs`: see `Adapter.ts`).
 *
 * @since 0.1.0
 */
import {
  AgentRuntime,
  type AgentRuntimeShape,
  AgentRuntimes,
  createRuntime,
  type CreateRuntimeOptions,
  type PromiseRuntime,
  type SettingsInput
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"

/** 1 MiB in bytes. */
export const MiB = 1024 * 1024
/** One WebAssembly page: 64 KiB in bytes. */
export const PAGE = 65_536

/** Settings for benchmarks: a big pool (accounting only) so spawning is never refused by default. */
export const benchSettings = (overrides: SettingsInput = {}): SettingsInput => ({
  ...overrides,
  pool: { totalMemory: 1024 * 1024 * MiB, maxHandles: 10_000_000, ...overrides.pool }
})

/** The verifier layer: the TEST-ONLY trust store, unsigned modules accepted. */
export const verifierLayer = Signing.layer({ trustStore: testOnlyTrustStore(), allowUnsigned: true })

let engineUnderTest: Layer.Layer<any> | undefined = undefined

/** The engine layer `makeRuntime` and `makePromiseRuntime` use by default: the native engine unless `withEngine` set another. */
export const defaultEngine = (): Layer.Layer<any> => engineUnderTest ?? NativeEngine.layer

/**
 * Runs `body` with `engine` as the default engine of every runtime the
 * suites build (suites that pick their own engine, e.g. `worker`, keep it),
 * then restores the previous default. Suites run one after another.
 */
export const withEngine = async <A>(engine: Layer.Layer<any>, body: () => Promise<A>): Promise<A> => {
  const previous = engineUnderTest
  engineUnderTest = engine
  try {
    return await body()
  } finally {
    engineUnderTest = previous
  }
}

/** A running runtime: the service, a way to run its effects, and disposal. */
export interface BenchRuntime {
  readonly runtime: AgentRuntimeShape
  readonly run: <A, E>(effect: Effect.Effect<A, E, never>) => Promise<A>
  readonly dispose: () => Promise<void>
}

/** Builds `AgentRuntimes.layerMemory(settings)` with `engine` (default: `defaultEngine()`, the native engine). */
export const makeRuntime = async (
  settings: SettingsInput = benchSettings(),
  engine: Layer.Layer<any> = defaultEngine()
): Promise<BenchRuntime> => {
  const layer = AgentRuntimes.layerMemory(settings).pipe(Layer.provide(Layer.mergeAll(engine, verifierLayer)))
  const managed = ManagedRuntime.make(layer as Layer.Layer<AgentRuntime>)
  const runtime = await managed.runPromise(
    Effect.gen(function* () {
      return yield* AgentRuntime
    })
  )
  return {
    runtime,
    run: (effect) => managed.runPromise(effect),
    dispose: () => managed.dispose()
  }
}

/**
 * The Promise facade (`createRuntime`) on `defaultEngine()` (the native
 * engine unless `withEngine` set another); `ports` adds layers beside the
 * in-memory defaults (e.g. `NodeEngine.layerPlatform`: Node's SHA-256).
 */
export const makePromiseRuntime = (
  settings: SettingsInput = benchSettings(),
  ports?: CreateRuntimeOptions["ports"]
): Promise<PromiseRuntime> =>
  createRuntime({
    engine: defaultEngine(),
    verifier: verifierLayer,
    settings,
    ...(ports === undefined ? {} : { ports })
  })
