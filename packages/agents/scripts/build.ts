/**
 * Builds every agent of the catalog (src/AgentCatalog.ts) into `build/`:
 *
 *   1. compile: AssemblyScript sources with the `asc` JS API (all in one worker
 *      thread of this process, `-O3 --runtime incremental`, no debug info),
 *      WAT sources with wabt's `parseWat(...).toBinary()`;
 *   2. write the compiled bytes to `build/unsigned/<name>.wasm`;
 *   3. sign each with the committed test-only key (`@agent-runtime/signing`,
 *      embedded `agent-runtime.signature` section) into `build/<name>.wasm`;
 *   4. write `build/manifest.json`.
 *
 * Run it as `pnpm --filter @agent-runtime/agents fixtures` (the package's
 * `fixtures` and `build` scripts), which runs
 * `node --conditions=@agent-runtime/source --import tsx scripts/build.ts`
 * so workspace packages resolve from source.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import { moduleHash, signModule } from "@agent-runtime/signing"
import { testOnlyKeyPair } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import wabtInit from "wabt"
import { type AgentSource, agentSources } from "../src/AgentCatalog.js"
import type { ManifestEntry } from "../src/AgentFixture.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const buildDir = join(root, "build")
const unsignedDir = join(buildDir, "unsigned")

/** asc flags shared by every AssemblyScript agent. */
const ascFlags = [
  "-O3",
  "--runtime",
  "incremental",
  // Assertions are compiled out and `abort` becomes `unreachable`, so the
  // modules import nothing from the host.
  "--noAssert",
  "--use",
  "abort=",
  "--noColors"
]

/** WebAssembly features the WAT sources may use (all standardised, on in every engine we target). */
const watFeatures = {
  multi_value: true,
  mutable_globals: true,
  sign_extension: true,
  sat_float_to_int: true,
  bulk_memory: true
}

interface Compiled {
  readonly agent: AgentSource
  readonly bytes: Uint8Array<ArrayBuffer>
}

/**
 * Compiles every AssemblyScript agent in one worker thread of this process
 * (scripts/compile-assemblyscript.mjs), started without tsx's loader hooks.
 */
const compileAssemblyScript = (agents: ReadonlyArray<AgentSource>): Promise<Array<Compiled>> =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./compile-assemblyscript.mjs", import.meta.url), {
      execArgv: [],
      workerData: { jobs: agents.map((a) => ({ name: a.name, file: join(root, a.source) })), flags: ascFlags }
    })
    worker.once("error", reject)
    worker.once("exit", (code) => reject(new Error(`the AssemblyScript worker exited (code ${code}) without a result`)))
    worker.once("message", (message: AscMessage) => {
      void worker.terminate()
      if (!message.ok) return reject(new Error(message.error))
      resolve(
        message.results.map(({ name, bytes }) => ({
          agent: agents.find((a) => a.name === name)!,
          bytes: new Uint8Array(bytes)
        }))
      )
    })
  })

type AscMessage =
  | { readonly ok: true; readonly results: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }> }
  | { readonly ok: false; readonly error: string }

type Wabt = Awaited<ReturnType<typeof wabtInit>>
let wabtInstance: Promise<Wabt> | undefined
const loadWabt = (): Promise<Wabt> => (wabtInstance ??= wabtInit())

const compileWat = async (agent: AgentSource): Promise<Compiled> => {
  const wabt = await loadWabt()
  const file = join(root, agent.source)
  const module = wabt.parseWat(file, readFileSync(file, "utf8"), watFeatures)
  try {
    module.resolveNames()
    module.validate()
    const { buffer } = module.toBinary({ log: false, write_debug_names: false })
    return { agent, bytes: new Uint8Array(buffer) }
  } finally {
    module.destroy()
  }
}

/**
 * The signing step: embeds an `agent-runtime.signature` section made with the
 * committed TEST-ONLY key, for the agent's name and version.
 */
const sign = (bytes: Uint8Array, agent: AgentSource): Promise<Uint8Array> =>
  Effect.runPromise(signModule(bytes, { name: agent.name, version: agent.version }, testOnlyKeyPair.secretKey))

/** `ModuleHash`: SHA-256 (hex) of the module without its signature section. */
const hash = (bytes: Uint8Array): Promise<string> => Effect.runPromise(moduleHash(bytes))

const exportNames = (bytes: Uint8Array<ArrayBuffer>): Array<string> =>
  WebAssembly.Module.exports(new WebAssembly.Module(bytes)).map((e) => e.name)

const main = async (): Promise<void> => {
  const started = performance.now()
  rmSync(buildDir, { recursive: true, force: true })
  mkdirSync(unsignedDir, { recursive: true })

  // 1-2. compile: AssemblyScript in a worker while wabt runs here; results in catalog order
  const fromAsc = compileAssemblyScript(agentSources.filter((a) => a.kind === "assemblyscript"))
  const fromWat = await Promise.all(agentSources.filter((a) => a.kind === "wat").map(compileWat))
  const byName = new Map([...(await fromAsc), ...fromWat].map((c) => [c.agent.name, c]))
  const compiled = agentSources.map((agent) => byName.get(agent.name)!)
  for (const { agent, bytes } of compiled) writeFileSync(join(unsignedDir, `${agent.name}.wasm`), bytes)

  // 3. sign
  const entries: Array<ManifestEntry> = []
  for (const { agent, bytes } of compiled) {
    const signed = await sign(bytes, agent)
    writeFileSync(join(buildDir, `${agent.name}.wasm`), signed)
    entries.push({
      name: agent.name,
      version: agent.version,
      file: `${agent.name}.wasm`,
      unsignedFile: `unsigned/${agent.name}.wasm`,
      hash: await hash(signed),
      bytes: signed.byteLength,
      unsignedBytes: bytes.byteLength,
      exports: exportNames(bytes),
      signed: true,
      source: agent.source
    })
  }

  // 4. manifest
  writeFileSync(join(buildDir, "manifest.json"), `${JSON.stringify(entries, null, 2)}\n`)
  const ms = Math.round(performance.now() - started)
  console.log(`agents: built and signed ${entries.length} modules into build/ in ${ms} ms`)
}

await main()
