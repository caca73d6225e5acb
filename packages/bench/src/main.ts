/**
 * `pnpm bench` (root: `turbo run bench`; here: `pnpm --filter @agent-runtime/bench bench`).
 *
 * Flags (after `--` when run through pnpm/turbo: `pnpm bench -- --quick`):
 * - `--quick`: CI smoke mode — fewer samples, smaller batches, scale capped
 *   at 20 000 agents with a 20 s limit per probe; under 2 minutes;
 * - `--suite=load,invoke`: only these suites;
 * - `--out=<path>`: the JSON file (default `results/latest.json` in this package);
 * - `--adapter <path>` (or `--adapter=<path>`): run the suites on your own
 *   engine instead of the native engine, next to the raw WebAssembly
 *   baselines of the same run — a module exporting a `Layer` providing the
 *   domain's `WasmEngine` (see `Adapter.ts`). Only the suites that run on
 *   the default engine (`load`, `spawn`, `invoke`, `lifecycle`; all four
 *   unless `--suite` picks some); naming another suite exits 2. The JSON
 *   gets an `engine` field. A relative path is resolved from the folder
 *   pnpm was run in (`INIT_CWD`: `pnpm --filter @agent-runtime/bench bench
 *   -- --adapter ./my-engine.mjs`); the root `pnpm bench` goes through
 *   turbo, whose pnpm runs in this package's folder: give it an absolute path;
 * - `--adapter-export=<name>`: which export of the adapter module is the engine.
 *
 * Prints the table (Markdown) and writes the JSON. A suite that throws is
 * reported as a note and the others still run; the exit code is 1 then.
 *
 * @since 0.1.0
 */
import { Progress } from "@agent-runtime/cli"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { AdapterError, type EngineUnderTest, loadAdapter } from "./Adapter.js"
import { withEngine } from "./BenchRuntime.js"
import type { SuiteResult } from "./Measure.js"
import { type BenchResult, machine, resolve, table, writeJson } from "./Report.js"
import { suites } from "./Suites.js"

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const only = args
  .find((a) => a.startsWith("--suite="))
  ?.slice("--suite=".length)
  .split(",")
const out =
  args.find((a) => a.startsWith("--out="))?.slice("--out=".length) ??
  join(dirname(fileURLToPath(import.meta.url)), "..", "results", "latest.json")

const adapterAt = args.indexOf("--adapter")
const adapterPath =
  args.find((a) => a.startsWith("--adapter="))?.slice("--adapter=".length) ??
  (adapterAt >= 0 ? args[adapterAt + 1] : undefined)
const adapterExport = args.find((a) => a.startsWith("--adapter-export="))?.slice("--adapter-export=".length)
if (adapterAt >= 0 && (adapterPath === undefined || adapterPath.startsWith("--"))) {
  console.error("--adapter needs the path of a module exporting a WasmEngine layer")
  process.exit(2)
}

const unknown = only?.filter((n) => !suites.some((s) => s.name === n)) ?? []
if (unknown.length > 0) {
  console.error(`unknown suite(s): ${unknown.join(", ")}; known: ${suites.map((s) => s.name).join(", ")}`)
  process.exit(2)
}
const notForAdapters =
  adapterPath === undefined ? [] : (only?.filter((n) => suites.some((s) => s.name === n && !s.adapter)) ?? [])
if (notForAdapters.length > 0) {
  console.error(
    `suite(s) ${notForAdapters.join(", ")} measure engines of their own and cannot run on --adapter; ` +
      `these can: ${suites
        .filter((s) => s.adapter)
        .map((s) => s.name)
        .join(", ")}`
  )
  process.exit(2)
}

// pnpm runs the script in this package's folder; INIT_CWD is the folder that pnpm was run in
let engine: EngineUnderTest | undefined
if (adapterPath !== undefined) {
  try {
    engine = await loadAdapter(adapterPath, { cwd: process.env.INIT_CWD ?? process.cwd(), exportName: adapterExport })
  } catch (e) {
    console.error(e instanceof AdapterError ? `adapter: ${e.message}` : e)
    process.exit(2)
  }
  process.stderr.write(
    `engine: ${engine.name}, ${engine.platform}, capabilities ${JSON.stringify(engine.capabilities)}\n`
  )
}

const startedAt = new Date()
const start = performance.now()
const results: Array<SuiteResult> = []
const failures: Array<{ suite: string; note: string }> = []
const selected = suites.filter((suite) =>
  only === undefined ? engine === undefined || suite.adapter : only.includes(suite.name)
)
// on a terminal: a progress bar over the suites; otherwise one plain line per suite
const bar = process.stderr.isTTY
  ? Progress.make({ label: `bench${quick ? " (quick)" : ""}`, total: selected.length })
  : undefined
for (const suite of selected) {
  const t = performance.now()
  if (bar === undefined) process.stderr.write(`▶ ${suite.name}${quick ? " (quick)" : ""}…`)
  try {
    results.push(
      await (engine === undefined ? suite.run({ quick }) : withEngine(engine.layer, () => suite.run({ quick })))
    )
    const took = `${((performance.now() - t) / 1000).toFixed(1)} s`
    if (bar === undefined) process.stderr.write(` ${took}\n`)
    else bar.advance(`${suite.name} ${took}`)
  } catch (e) {
    if (bar === undefined) process.stderr.write(" FAILED\n")
    else bar.advance(`${suite.name} FAILED`)
    failures.push({
      suite: suite.name,
      note: `suite failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`
    })
  }
}
bar?.stop()
const rows = resolve(results)
/** The run; with `--adapter`, also which engine it ran on. */
const result: BenchResult & { readonly engine?: Pick<EngineUnderTest, "name" | "path" | "platform" | "capabilities"> } =
  {
    startedAt: startedAt.toISOString(),
    durationMs: performance.now() - start,
    mode: quick ? "quick" : "full",
    ...(engine === undefined
      ? {}
      : {
          engine: { name: engine.name, path: engine.path, platform: engine.platform, capabilities: engine.capabilities }
        }),
    machine: machine(),
    rows,
    notes: [...results.flatMap((r) => r.notes.map((note) => ({ suite: r.suite, note }))), ...failures]
  }
writeJson(out, result)
const m = result.machine
console.log(
  `\n${m.cpus} × ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${m.node} (V8 ${m.v8}), ${m.os}; ${result.mode} run, ${(result.durationMs / 1000).toFixed(0)} s`
)
console.log(
  `engine: ${engine === undefined ? "@agent-runtime/engine-native (default)" : `${engine.name}, ${engine.platform}`}; ratios against raw WebAssembly of this run\n`
)
console.log(table(rows))
const rowNotes = rows.filter((r) => r.note !== null).map((r) => `- ${r.suite} / ${r.name}: ${r.note}`)
if (rowNotes.length > 0) console.log(`\nRow notes:\n${rowNotes.join("\n")}`)
if (result.notes.length > 0) console.log(`\nNotes:\n${result.notes.map((n) => `- ${n.suite}: ${n.note}`).join("\n")}`)
console.log(`\nJSON: ${out}`)
process.exit(failures.length > 0 ? 1 : 0)
