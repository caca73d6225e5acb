/**
 * Runs a TypeScript entry point of this package the way a user's build runs
 * it: `node --conditions=@agent-runtime/source bin/bundled.mjs src/main.ts [args]`.
 *
 * The entry and every workspace package it imports (their `src/`, through the
 * `@agent-runtime/source` condition) are bundled by esbuild into one ES module
 * under `node_modules/.cache/agent-runtime-bench/` and imported in this
 * process. Unlike `bin/tsx.mjs` there is no `keepNames`: tsx compiles with
 * esbuild's `keepNames`, which wraps every function and class literal in a
 * `__name(…)` call at creation — each per-call closure of the host's call
 * path then pays a runtime call that neither `tsc`'s `dist/` nor an
 * application bundle pays (the domain's hot invoke path measured 1.95 µs
 * under tsx and 0.93 µs bundled). Bench rows for host-side code are therefore
 * measured from this bundle (`pnpm bench`); `pnpm bench:tsx` runs the same
 * entry under tsx for comparison. Child processes some suites start (scale,
 * multi-host, swarm) still run under `bin/tsx.mjs`, and so does a run with
 * `--adapter`: an adapter module imports the workspace packages itself (from
 * source, like the example in `apps/examples/third-party-adapter`), and it
 * must share their module instances with the suites.
 *
 * `import.meta.url` of every workspace source file is replaced with that
 * file's own URL, so the code that finds fixtures, worker scripts and
 * reference modules relative to itself resolves exactly as from source.
 * npm packages stay external: each import is resolved at bundle time, from
 * its importer, and kept as an import of that file (pnpm gives every
 * workspace package its own `node_modules`).
 */
import { build } from "esbuild"
import { mkdirSync, readFileSync } from "node:fs"
import { dirname, extname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const entry = process.argv[2]
if (entry === undefined) {
  console.error("usage: node --conditions=@agent-runtime/source bin/bundled.mjs <file.ts> [args]")
  process.exit(2)
}
if (process.argv.slice(3).some((a) => a === "--adapter" || a.startsWith("--adapter="))) {
  const { register } = await import("tsx/esm/api")
  register()
  process.argv.splice(2, 1)
  await import(pathToFileURL(resolve(entry)).href)
} else {
  await runBundled(entry)
}

/** Bundles `entry` (see the module doc) and imports the bundle. */
async function runBundled(entry) {
  const here = dirname(fileURLToPath(import.meta.url))
  const packageRoot = resolve(here, "..")
  const outDir = join(packageRoot, "node_modules", ".cache", "agent-runtime-bench")
  mkdirSync(outDir, { recursive: true })
  const outfile = join(outDir, `${entry.replace(/[^A-Za-z0-9]+/g, "_")}.mjs`)

  const loaders = { ".ts": "ts", ".mts": "ts", ".cts": "ts", ".js": "js", ".mjs": "js", ".cjs": "js" }

  await build({
    entryPoints: [resolve(entry)],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    conditions: ["@agent-runtime/source"],
    sourcemap: "linked",
    logLevel: "warning",
    plugins: [
      {
        name: "agent-runtime-bench",
        setup(b) {
          // an npm package stays external, imported at run time from the file its importer would resolve
          b.onResolve({ filter: /^[^./]/ }, async (args) => {
            if (args.path.startsWith("@agent-runtime/") || args.path.startsWith("node:")) return undefined
            if (args.pluginData === "inner") return undefined
            const found = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: "inner" })
            if (found.errors.length > 0) return { errors: found.errors }
            return { path: found.path, external: true }
          })
          b.onLoad({ filter: /\.[cm]?[jt]s$/ }, (args) => {
            if (args.path.includes("/node_modules/")) return undefined
            const text = readFileSync(args.path, "utf8")
            if (!text.includes("import.meta.url")) return undefined
            return {
              contents: text.replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href)),
              loader: loaders[extname(args.path)] ?? "ts",
              resolveDir: dirname(args.path)
            }
          })
        }
      }
    ]
  })
  process.argv.splice(2, 1)
  await import(pathToFileURL(outfile).href)
}
