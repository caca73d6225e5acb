/**
 * What every group of cases receives from `suite`.
 *
 * @since 0.1.0
 */
import type { EngineCapabilities, SettingsInput, WasmEngine } from "@agent-runtime/domain"
import type * as Layer from "effect/Layer"
import type { Fixtures } from "../Fixtures.js"
import type { Runner } from "../Harness.js"

export interface SuiteContext {
  /** The suite's name (the platform, e.g. "native"); used in titles only, never to branch. */
  readonly name: string
  readonly engineLayer: Layer.Layer<WasmEngine>
  /** The engine's capability record: the only thing cases branch on. */
  readonly caps: EngineCapabilities
  readonly fixtures: Fixtures
  readonly settings: SettingsInput
  /** Runs a case body on a fresh runtime over the engine. */
  readonly run: Runner
}
