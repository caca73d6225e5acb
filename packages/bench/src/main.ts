/**
 * `pnpm bench` (root: `turbo run bench`; here: `pnpm --filter @agent-runtime/bench bench`).
 *
 * Flags (after `--` when run through pnpm/turbo: `pnpm bench -- --quick`):
 * - `--quick`: CI smoke mode — fewer samples, smaller batches, scale capped
 *   at 20 000 agents with a 20 s limit per probe; under 2 minutes;
 * - `--suite=load,invoke`: only these suites;
 * - `--out=<path>`: the JSON file (default `results/latest.json` in this package).
 *
 * Prints the table (Markdown) and writes the JSON. A suite that throws is
 * reported as a note and the others still run; the exit code is 1 then.
 *
 * @since 0.1.0
 */
import { Progress } from "@agent-runtime/cli"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { SuiteResult } from "./Measure.js"
import { type BenchResult, machine, resolve, table, writeJson } from "./Report.js"
import { suites } from "./Suites.js"

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const only = args.find((a) => a.startsWith("--suite="))?.slice("--suite=".length).split(",")
const out = args.find((a) => a.startsWith("--out="))?.slice("--out=".length) ??
  join(dirname(fileURLToPath(import.meta.url)), "..", "results", "latest.json")

const unknown = only?.filter((n) => !suites.some((s) => s.name === n)) ?? []
if (unknown.length > 0) {
  console.error(`unknown suite(s): ${unknown.join(", ")}; known: ${suites.map((s) => s.name).join(", ")}`)
  process.exit(2)
}

const startedAt = new Date()
const start = performance.now()
const results: Array<SuiteResult> = []
const failures: Array<{ suite: string; note: string }> = []
const selected = suites.filter((suite) => only === undefined || only.includes(suite.name))
// on a terminal: a progress bar over the suites; otherwise one plain line per suite
const bar = process.stderr.isTTY ? Progress.make({ label: `bench${quick ? " (quick)" : ""}`, total: selected.length }) : undefined
for (const suite of selected) {
  const t = performance.now()
  if (bar === undefined) process.stderr.write(`▶ ${suite.name}${quick ? " (quick)" : ""}…`)
  try {
    results.push(await suite.run({ quick }))
    const took = `${((performance.now() - t) / 1000).toFixed(1)} s`
    if (bar === undefined) process.stderr.write(` ${took}\n`)
    else bar.advance(`${suite.name} ${took}`)
  } catch (e) {
    if (bar === undefined) process.stderr.write(" FAILED\n")
    else bar.advance(`${suite.name} FAILED`)
    failures.push({ suite: suite.name, note: `suite failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}` })
  }
}
bar?.stop()
const rows = resolve(results)
const result: BenchResult = {
  startedAt: startedAt.toISOString(),
  durationMs: performance.now() - start,
  mode: quick ? "quick" : "full",
  machine: machine(),
  rows,
  notes: [...results.flatMap((r) => r.notes.map((note) => ({ suite: r.suite, note }))), ...failures]
}
writeJson(out, result)
const m = result.machine
console.log(`\n${m.cpus} × ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${m.node} (V8 ${m.v8}), ${m.os}; ${result.mode} run, ${(result.durationMs / 1000).toFixed(0)} s\n`)
console.log(table(rows))
const rowNotes = rows.filter((r) => r.note !== null).map((r) => `- ${r.suite} / ${r.name}: ${r.note}`)
if (rowNotes.length > 0) console.log(`\nRow notes:\n${rowNotes.join("\n")}`)
if (result.notes.length > 0) console.log(`\nNotes:\n${result.notes.map((n) => `- ${n.suite}: ${n.note}`).join("\n")}`)
console.log(`\nJSON: ${out}`)
process.exit(failures.length > 0 ? 1 : 0)
