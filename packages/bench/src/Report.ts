/**
 * Turning rows into the result: ratios to the baseline of the same run,
 * targets reported (✓/✗, never asserted), the printed table and the JSON
 * file (`results/latest.json`, git-ignored).
 *
 * @since 0.1.0
 */
import { cpus, platform, release, totalmem, arch } from "node:os"
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import type { Row, SuiteResult } from "./Measure.js"

/** The machine a run ran on. */
export interface Machine {
  readonly cpus: number
  readonly cpuModel: string
  readonly memoryBytes: number
  readonly node: string
  readonly v8: string
  readonly os: string
}

/** One row of the result: the measurement, its ratio and its target. Times in ms per operation. */
export interface ResultRow {
  readonly suite: string
  readonly name: string
  readonly unit: Row["unit"]
  readonly median: number
  readonly p99: number
  readonly samples: number
  readonly batch: number
  readonly baseline: string | null
  /** median / baseline median (below 1: faster / smaller than the baseline). */
  readonly ratio: number | null
  readonly target: { readonly text: string; readonly met: boolean } | null
  readonly note: string | null
}

/** The whole run, as written to `results/latest.json`. */
export interface BenchResult {
  readonly startedAt: string
  readonly durationMs: number
  readonly mode: "quick" | "full"
  readonly machine: Machine
  readonly rows: ReadonlyArray<ResultRow>
  /** What could not be measured, and why; suites that failed. */
  readonly notes: ReadonlyArray<{ readonly suite: string; readonly note: string }>
}

export const machine = (): Machine => ({
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? "unknown",
  memoryBytes: totalmem(),
  node: process.version,
  v8: process.versions.v8,
  os: `${platform()} ${release()} ${arch()}`
})

/** Resolves each row's baseline within its suite and computes ratio and target. */
export const resolve = (suites: ReadonlyArray<SuiteResult>): Array<ResultRow> =>
  suites.flatMap((s) =>
    s.rows.map((row): ResultRow => {
      const base = row.baseline === undefined ? undefined : s.rows.find((r) => r.name === row.baseline)
      const ratio = base === undefined || base.median === 0 ? null : row.median / base.median
      const met = row.target === undefined ? undefined : row.target.met(ratio ?? Number.NaN, row.median)
      return {
        suite: row.suite,
        name: row.name,
        unit: row.unit,
        median: row.median,
        p99: row.p99,
        samples: row.samples,
        batch: row.batch,
        baseline: row.baseline ?? null,
        ratio,
        target: row.target === undefined ? null : { text: row.target.text, met: met === true },
        note: row.note ?? null
      }
    })
  )

/** A duration in ms, in the unit that reads best (ns, µs, ms, s). */
export const formatMs = (ms: number): string => {
  if (!Number.isFinite(ms)) return String(ms)
  if (ms < 0.001) return `${(ms * 1e6).toFixed(1)} ns`
  if (ms < 1) return `${(ms * 1e3).toFixed(2)} µs`
  if (ms < 1000) return `${ms.toFixed(2)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}

const formatValue = (row: ResultRow, v: number): string =>
  row.unit === "ms" ? formatMs(v) : row.unit === "bytes" ? `${(v / 1024).toFixed(1)} KiB` : v.toLocaleString("en-US")

const formatRatio = (r: number | null): string =>
  r === null ? "baseline" : r >= 100 ? `${r.toFixed(0)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`

/** The rows as a Markdown table (what the console and BENCHMARKS.md show). */
export const table = (rows: ReadonlyArray<ResultRow>): string => {
  const header = ["suite", "name", "median", "p99", "samples", "ratio", "target"]
  const lines = rows.map((r) => [
    r.suite,
    r.name,
    formatValue(r, r.median),
    r.unit === "ms" ? formatValue(r, r.p99) : "—",
    r.unit === "ms" ? `${r.samples}${r.batch > 1 ? ` ×${r.batch}` : ""}` : "—",
    r.baseline === null ? "baseline" : formatRatio(r.ratio),
    r.target === null ? "" : `${r.target.met ? "✓" : "✗"} ${r.target.text}`
  ])
  const all = [header, ...lines]
  const widths = header.map((_, i) => Math.max(...all.map((l) => [...(l[i] ?? "")].length)))
  const fmt = (l: ReadonlyArray<string>) =>
    `| ${l.map((c, i) => c + " ".repeat((widths[i] ?? 0) - [...c].length)).join(" | ")} |`
  return [fmt(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...lines.map(fmt)].join("\n")
}

/** Writes the result as JSON, creating the directory. */
export const writeJson = (path: string, result: BenchResult): void => {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`)
}
