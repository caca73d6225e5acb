/**
 * `@agent-runtime/agents`: real WebAssembly agent modules (AssemblyScript in
 * `assembly/`, WAT in `wat/`) built by `pnpm --filter @agent-runtime/agents
 * fixtures` and signed with the committed test-only key. See README.md for
 * the ABI every agent follows and the exports of each.
 *
 * @example
 * ```ts
 * import { readAgent, manifestEntry } from "@agent-runtime/agents"
 * const bytes = readAgent("counter")            // signed .wasm bytes
 * const { name, version } = manifestEntry("counter")
 * ```
 */
export {
  type AgentName,
  agentNames,
  type AgentSource,
  type AgentSourceKind,
  agentSource,
  agentSources
} from "./AgentCatalog.js"
export {
  type AgentFixture,
  agentFixture,
  agentFixtures,
  type AgentFixtures,
  agentPath,
  buildDir,
  fixturesIn,
  manifest,
  manifestEntry,
  type ManifestEntry,
  readAgent,
  readUnsignedAgent,
  unsignedAgentPath
} from "./AgentFixture.js"
