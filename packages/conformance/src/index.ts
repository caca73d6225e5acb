/**
 * `@agent-runtime/conformance` — one platform-neutral suite every
 * `WasmEngine` adapter runs in its real runtime: `suite(name, engineLayer)`.
 *
 * @since 0.1.0
 */
export { suite, type SuiteOptions } from "./Suite.js"
export { agentNames, type AgentName, defaultFixtures, type FixtureLoader } from "./Fixtures.js"
export { type EngineSpy, MiB, PAGE, spyLayer, verifierLayer } from "./Harness.js"
export {
  type CrossEngineScenario,
  crossEngineScenarios,
  decodeVector,
  encodeVector,
  toBase64
} from "./cases/CrossEngine.js"
