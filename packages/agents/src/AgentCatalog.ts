/**
 * The catalog of agent modules this package builds: one entry per agent with
 * its name, version and source file (AssemblyScript under `assembly/`,
 * hand-written WebAssembly text under `wat/`). `scripts/build.ts` compiles
 * exactly these, and `agentNames` is the list the rest of the repository
 * iterates over. Pure data: no platform API.
 */

/** How a source becomes a `.wasm`: the AssemblyScript compiler (`asc`) or wabt's WAT parser. */
export type AgentSourceKind = "assemblyscript" | "wat"

/** One agent module to build. `source` is relative to the package root. */
export interface AgentSource {
  readonly name: string
  readonly version: string
  readonly kind: AgentSourceKind
  readonly source: string
  /** One line: what the agent is for. */
  readonly description: string
}

const as = <const N extends string>(name: N, description: string): AgentSource & { readonly name: N } => ({
  name,
  version: "1.0.0",
  kind: "assemblyscript",
  source: `assembly/${name}.ts`,
  description
})

const wat = <const N extends string>(name: N, description: string): AgentSource & { readonly name: N } => ({
  name,
  version: "1.0.0",
  kind: "wat",
  source: `wat/${name}.wat`,
  description
})

/** Every agent module, in build order. */
export const agentSources = [
  as("counter", "stateful counter: increment/add/get/reset, i64 addition"),
  as("text", "word count, unique words, top word and CRC-32 of text passed through linear memory"),
  as("leaky", "leaks `kib` KiB per call, growing linear memory"),
  as("flaky", "healthy for N health checks, then unhealthy forever; _recover does not help"),
  as("trapper", "divide by zero, unreachable, out-of-bounds load, stack overflow"),
  as("lifecycle", "_initialize / _cleanup / _health_check / _recover with observable state"),
  wat("looper", "an infinite loop (spin) and a bounded one (spin_n)"),
  wat("multi", "multi-value results and f32/f64 parameters"),
  wat("no-memory", "functions and a global, no linear memory"),
  wat("host-caller", "imports env.log(i32) and env.now() -> f64"),
  wat("grower", "memory 1 page, maximum 4 pages; grow returns memory.grow's result"),
  wat("start-trap", "a start function that executes unreachable: instantiation traps")
] as const satisfies ReadonlyArray<AgentSource>

/** The name of an agent this package builds. */
export type AgentName = (typeof agentSources)[number]["name"]

/** The names of every agent, in build order. */
export const agentNames: ReadonlyArray<AgentName> = agentSources.map((a) => a.name)

/** The catalog entry of `name`; throws for a name this package does not build. */
export const agentSource = (name: string): AgentSource => {
  const found = agentSources.find((a) => a.name === name)
  if (found === undefined) {
    throw new Error(`@agent-runtime/agents: unknown agent "${name}" (known: ${agentNames.join(", ")})`)
  }
  return found
}
