/**
 * `suite(name, engineLayer)`: the conformance suite every `WasmEngine` must
 * pass (DESIGN.md "Platforms": each platform runs the same suite in its real
 * runtime). It registers `describe` / `it.effect` blocks covering every
 * invariant of the spec (resource limits, isolation, health thresholds,
 * unique instances, verification) and every service of `AgentRuntime`,
 * against the given engine and the real signed agents of
 * `@agent-runtime/agents`.
 *
 * Engine gaps are expressed only through the engine's `capabilities` record
 * (`snapshots`, `preemptiveTimeout`, `fuel`): the case list is the same on
 * every platform, and a case an engine cannot support is reported as
 * skipped, never silently passed. Cases run with `TestClock` (no real
 * sleeps) except the preemption case, where real time must pass.
 *
 * @example
 * ```ts
 * // packages/engine-native/test/Conformance.test.ts
 * import { suite } from "@agent-runtime/conformance"
 * import { NativeEngine } from "../src/index.js"
 * suite("native", NativeEngine.layer)
 * ```
 *
 * @since 0.1.0
 */
import type { EngineCapabilities, SettingsInput, WasmEngine } from "@agent-runtime/domain"
import { describe } from "@effect/vitest"
import type * as Layer from "effect/Layer"
import { cacheCases } from "./cases/CacheAndGc.js"
import { crossEngineCases } from "./cases/CrossEngine.js"
import type { SuiteContext } from "./cases/Context.js"
import { diagnosticCases } from "./cases/Diagnostics.js"
import { eventCases } from "./cases/Events.js"
import { factoryCases } from "./cases/Factory.js"
import { healthCases } from "./cases/Health.js"
import { hostFaultCases } from "./cases/HostFaults.js"
import { hostileModuleCases } from "./cases/HostileModules.js"
import { hostResultCases } from "./cases/HostResults.js"
import { isolationCases, resourceLimitCases, uniqueInstanceCases } from "./cases/Invariants.js"
import { invocationCases } from "./cases/Invocation.js"
import { lifecycleCases } from "./cases/Lifecycle.js"
import { memoryPressureCases } from "./cases/MemoryPressure.js"
import { promiseFacadeCases } from "./cases/PromiseFacade.js"
import { shutdownCases } from "./cases/Shutdown.js"
import { snapshotCases } from "./cases/Snapshots.js"
import { tableCases } from "./cases/Tables.js"
import { verificationCases } from "./cases/Verification.js"
import { defaultFixtures, type FixtureLoader, makeFixtures } from "./Fixtures.js"
import { capabilitiesOf, makeRunner } from "./Harness.js"

/** Options of `suite`. */
export interface SuiteOptions {
  /** Where the signed agent modules come from (default: `readAgent` of `@agent-runtime/agents`). */
  readonly fixtures?: FixtureLoader | undefined
  /**
   * Runtime settings applied under every case's own settings (e.g. a longer
   * `health.timeoutMs` for an engine whose calls cross a thread). Cases set
   * the pool size, thresholds and `autoPressure` they need themselves.
   */
  readonly settings?: SettingsInput | undefined
}

/**
 * Registers the conformance suite for one engine under `describe("conformance: <name>")`.
 * The engine layer is built once to read its `capabilities`, then once per case.
 */
export const suite = (name: string, engineLayer: Layer.Layer<WasmEngine>, options: SuiteOptions = {}): void => {
  describe(`conformance: ${name}`, async () => {
    const caps: EngineCapabilities = await capabilitiesOf(engineLayer)
    const fixtures = makeFixtures(options.fixtures ?? defaultFixtures)
    const settings = options.settings ?? {}
    const ctx: SuiteContext = {
      name,
      engineLayer,
      caps,
      fixtures,
      settings,
      run: makeRunner({ engineLayer, caps: () => caps, fixtures, settings })
    }
    verificationCases(ctx)
    uniqueInstanceCases(ctx)
    resourceLimitCases(ctx)
    tableCases(ctx)
    isolationCases(ctx)
    invocationCases(ctx)
    hostResultCases(ctx)
    hostFaultCases(ctx)
    diagnosticCases(ctx)
    hostileModuleCases(ctx)
    lifecycleCases(ctx)
    healthCases(ctx)
    memoryPressureCases(ctx)
    cacheCases(ctx)
    snapshotCases(ctx)
    crossEngineCases(ctx)
    eventCases(ctx)
    shutdownCases(ctx)
    factoryCases(ctx)
    promiseFacadeCases(ctx)
  })
}
