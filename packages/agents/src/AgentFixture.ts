/**
 * Read the built agent modules from disk. `pnpm --filter @agent-runtime/agents
 * fixtures` compiles every source of the catalog into `build/<name>.wasm`
 * (signed with the committed test-only key), keeps the unsigned bytes in
 * `build/unsigned/<name>.wasm`, and writes `build/manifest.json`. These
 * readers are synchronous (Node `fs`) so test files can load fixtures at
 * module top level.
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { type AgentName, agentSource } from "./AgentCatalog.js"

/** One built agent, as recorded in `build/manifest.json`. */
export interface ManifestEntry {
  readonly name: string
  readonly version: string
  /** The signed module, relative to `build/` (`"counter.wasm"`). */
  readonly file: string
  /** The unsigned module, relative to `build/` (`"unsigned/counter.wasm"`). */
  readonly unsignedFile: string
  /** ModuleHash: SHA-256 (lowercase hex) of the module with the signature section excluded. */
  readonly hash: string
  /** Size of the signed file in bytes. */
  readonly bytes: number
  /** Size of the unsigned file in bytes. */
  readonly unsignedBytes: number
  /** Export names in binary order (functions, memory, globals). */
  readonly exports: ReadonlyArray<string>
  /** Whether `file` carries the `agent-runtime.signature` custom section. */
  readonly signed: boolean
  /** Source file relative to the package root (`"assembly/counter.ts"`, `"wat/looper.wat"`). */
  readonly source: string
}

/** A built agent with the absolute path of its signed `.wasm`. */
export interface AgentFixture {
  readonly name: string
  readonly version: string
  /** Absolute path of the signed module. */
  readonly file: string
  readonly exports: ReadonlyArray<string>
}

/** Absolute path of this package's `build/` directory (with a trailing separator). */
export const buildDir: string = fileURLToPath(new URL("../build/", import.meta.url))

/** A name of the catalog; other strings are accepted and rejected at run time with the list of known names. */
type Name = AgentName | (string & {})

/** The readers of one build directory; the package's exports read `buildDir`. */
export interface AgentFixtures {
  /** Every built agent, from `manifest.json` (read on each call). */
  readonly manifest: () => ReadonlyArray<ManifestEntry>
  /** The manifest entry of one agent. */
  readonly manifestEntry: (name: Name) => ManifestEntry
  /** Absolute path of the signed `<name>.wasm`. */
  readonly agentPath: (name: Name) => string
  /** Absolute path of the unsigned `unsigned/<name>.wasm`. */
  readonly unsignedAgentPath: (name: Name) => string
  /** The signed module bytes (with the `agent-runtime.signature` custom section). */
  readonly readAgent: (name: Name) => Uint8Array<ArrayBuffer>
  /** The module bytes as compiled, without a signature section. */
  readonly readUnsignedAgent: (name: Name) => Uint8Array<ArrayBuffer>
  /** The fixture record of one agent: name, version, absolute path, export names. */
  readonly agentFixture: (name: Name) => AgentFixture
  /** Every built agent as a fixture record, in build order. */
  readonly agentFixtures: () => ReadonlyArray<AgentFixture>
}

const missingBuild = (what: string): Error =>
  new Error(
    `@agent-runtime/agents: ${what} is missing; build the agent fixtures first with ` +
      "`pnpm --filter @agent-runtime/agents fixtures`"
  )

/**
 * The readers of the build directory `dir` (absolute, with a trailing separator).
 * Every reader throws an `Error` for a name outside the catalog, and one that
 * names `pnpm --filter @agent-runtime/agents fixtures` when a file is missing.
 */
export const fixturesIn = (dir: string): AgentFixtures => {
  const readBuildFile = (relative: string): Uint8Array<ArrayBuffer> => {
    const path = `${dir}${relative}`
    if (!existsSync(path)) throw missingBuild(`build/${relative}`)
    return new Uint8Array(readFileSync(path))
  }
  const manifest = (): ReadonlyArray<ManifestEntry> => {
    const file = `${dir}manifest.json`
    if (!existsSync(file)) throw missingBuild("build/manifest.json")
    return JSON.parse(readFileSync(file, "utf8")) as ReadonlyArray<ManifestEntry>
  }
  const manifestEntry = (name: Name): ManifestEntry => {
    agentSource(name)
    const entry = manifest().find((e) => e.name === name)
    if (entry === undefined) throw missingBuild(`the manifest entry for "${name}"`)
    return entry
  }
  const agentPath = (name: Name): string => `${dir}${agentSource(name).name}.wasm`
  const unsignedAgentPath = (name: Name): string => `${dir}unsigned/${agentSource(name).name}.wasm`
  const readAgent = (name: Name) => readBuildFile(`${agentSource(name).name}.wasm`)
  const readUnsignedAgent = (name: Name) => readBuildFile(`unsigned/${agentSource(name).name}.wasm`)
  const agentFixture = (name: Name): AgentFixture => {
    const entry = manifestEntry(name)
    return { name: entry.name, version: entry.version, file: agentPath(name), exports: entry.exports }
  }
  const agentFixtures = () => manifest().map((e) => agentFixture(e.name))
  return {
    manifest,
    manifestEntry,
    agentPath,
    unsignedAgentPath,
    readAgent,
    readUnsignedAgent,
    agentFixture,
    agentFixtures
  }
}

const fixtures = fixturesIn(buildDir)

/** Every built agent, from `build/manifest.json` (read on each call). Throws if the fixtures were not built. */
export const manifest = fixtures.manifest
/** The manifest entry of one agent. Throws for an unknown name or a missing build. */
export const manifestEntry = fixtures.manifestEntry
/** Absolute path of the signed `build/<name>.wasm`. */
export const agentPath = fixtures.agentPath
/** Absolute path of the unsigned `build/unsigned/<name>.wasm`. */
export const unsignedAgentPath = fixtures.unsignedAgentPath
/** The signed module bytes (with the `agent-runtime.signature` custom section). */
export const readAgent = fixtures.readAgent
/** The module bytes as compiled, without a signature section. */
export const readUnsignedAgent = fixtures.readUnsignedAgent
/** The fixture record of one agent: name, version, absolute path, export names. */
export const agentFixture = fixtures.agentFixture
/** Every built agent as a fixture record, in build order. */
export const agentFixtures = fixtures.agentFixtures
