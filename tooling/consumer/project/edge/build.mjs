// (c) Builds an edge Worker from the installed tarballs, the way `agent-runtime bundle` does:
// the counter agent verified against the TEST-ONLY trust store and rewritten at build time
// (`@agent-runtime/engine-edge/bundle` BundleBuilder), its variants written as workerd `wasm`
// modules and the original as a `data` module, `bundle.js` importing them, the Worker bundled
// by esbuild (workerd conditions), and a workerd config. Usage: node edge/build.mjs <outDir>
import { readAgent } from "@agent-runtime/agents"
import { BundleBuilder } from "@agent-runtime/engine-edge/bundle"
import { verifyModule } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { Effect } from "effect"
import { build } from "esbuild"
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const out = process.argv[2] ?? join(here, "dist")
rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

const trustStore = testOnlyTrustStore()
const bundle = await Effect.runPromise(
  BundleBuilder.buildBundle({
    modules: [{ name: "counter", version: "1.0.0", bytes: readAgent("counter") }],
    agents: [{ type: "counter", module: "counter", memoryLimit: 1_048_576 }],
    includeOriginal: false,
    verifier: { verify: (bytes, meta) => verifyModule(bytes, meta, { trustStore }) }
  })
)
const lines = []
const wasm = []
const data = []
bundle.files.forEach((f, i) => {
  mkdirSync(dirname(join(out, f.path)), { recursive: true })
  writeFileSync(join(out, f.path), f.bytes)
  lines.push(`import f${i} from ${JSON.stringify(`./${f.path}`)}`)
  ;(f.kind === "wasm" ? wasm : data).push(`${JSON.stringify(f.path)}: f${i}`)
})
const manifest = JSON.stringify(bundle.manifest)
writeFileSync(
  join(out, "bundle.js"),
  `${lines.join("\n")}\nexport const manifest = ${manifest}\nexport const bundle = { manifest, modules: { ${wasm.join(", ")} }, data: { ${data.join(", ")} } }\n`
)
await build({
  entryPoints: [join(here, "worker.mjs")],
  outfile: join(out, "worker.js"),
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  conditions: ["workerd", "worker", "browser", "import", "default"],
  mainFields: ["module", "main"],
  external: ["*.wasm", "*.bin"],
  alias: { "agent-runtime:bundle": join(out, "bundle.js") },
  logLevel: "warning"
})
const modules = [
  `(name = "worker.js", esModule = embed "worker.js")`,
  ...bundle.files.map((f) => `(name = "${f.path}", ${f.kind === "wasm" ? "wasm" : "data"} = embed "${f.path}")`)
]
writeFileSync(
  join(out, "config.capnp"),
  `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "consumer", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "consumer") ],
);
const worker :Workerd.Worker = (
  modules = [ ${modules.join(", ")} ],
  compatibilityDate = "2026-01-01",
);
`
)
console.log(`edge bundle: ${bundle.files.length} files, worker.js → ${out}`)
