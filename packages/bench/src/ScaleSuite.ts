/**
 * Suite 7, scale: the largest number of live 1-page agents one process
 * holds before the first failure (`InsufficientMemory`, an engine error),
 * raw `new WebAssembly.Instance` against `AgentRuntime.spawnAgent`, with
 * V8's WebAssembly trap handler (V8 reserves guard regions of address space
 * per linear memory) and without it (`noTrapHandlerFlag`); each probe in its
 * own child process (`ScaleChild.ts`), bounded by a cap and a time limit;
 * and the memory per agent beyond its linear memory: the RSS and V8-heap
 * deltas per live agent after a full GC (a 1-page memory that was never
 * written is not resident, so the RSS delta is the overhead).
 *
 * @since 0.1.0
 */
import { execFile } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Row, type RunOptions, type SuiteResult, valueRow, size } from "./Measure.js"
import type { ScaleReport } from "./ScaleChild.js"

const SUITE = "scale"
const here = dirname(fileURLToPath(import.meta.url))
const launcher = join(here, "..", "bin", "tsx.mjs")
const child = join(here, "ScaleChild.ts")

/**
 * The flag that turns V8's WebAssembly trap handler off: Node 20.x spells it
 * `--disable-wasm-trap-handler` (V8 11.3 has no `--no-wasm-trap-handler`);
 * newer V8 accepts the V8 spelling.
 */
export const noTrapHandlerFlag = process.allowedNodeEnvironmentFlags.has("--disable-wasm-trap-handler")
  ? "--disable-wasm-trap-handler"
  : "--no-wasm-trap-handler"

/** Runs one probe in a child process and parses its report. */
export const probe = (
  mode: "raw" | "runtime",
  trapHandler: boolean,
  cap: number,
  limitMs: number
): Promise<ScaleReport> =>
  new Promise((resolve, reject) => {
    const args = [
      ...(trapHandler ? [] : [noTrapHandlerFlag]),
      "--expose-gc",
      "--conditions=@agent-runtime/source",
      launcher,
      child,
      mode,
      String(cap),
      String(limitMs)
    ]
    execFile(process.execPath, args, { timeout: limitMs + 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const lines = stdout
        .trim()
        .split("\n")
        .flatMap((l) => {
          try {
            return [
              JSON.parse(l) as
                | ScaleReport
                | { progress: number; elapsedMs: number; firstChunkMsPerAgent: number; lastChunkMsPerAgent: number }
            ]
          } catch {
            return []
          }
        })
      const last = lines.at(-1)
      if (last !== undefined && "mode" in last) return resolve(last)
      if (last !== undefined && "progress" in last) {
        // the process died (e.g. V8's fatal "Check failed: 0 == munmap") after `progress` live agents
        const fatal = stderr
          .split("\n")
          .find((l) => /Check failed|Fatal|out of memory/i.test(l))
          ?.trim()
        const zero = { rss: 0, heapUsed: 0, external: 0 }
        return resolve({
          mode,
          trapHandler,
          live: last.progress,
          stoppedBy: "crash",
          error: `process died after ${last.progress} live (${fatal ?? err?.message ?? "no message"})`,
          elapsedMs: last.elapsedMs,
          firstChunkMsPerAgent: last.firstChunkMsPerAgent,
          lastChunkMsPerAgent: last.lastChunkMsPerAgent,
          before: zero,
          after: zero
        })
      }
      reject(
        new Error(
          `scale probe ${mode} (trap handler ${trapHandler ? "on" : "off"}) failed: ${err?.message ?? ""} ${stderr.slice(-400)}`
        )
      )
    })
  })

const perAgent = (r: ScaleReport, key: "rss" | "heapUsed" | "external") =>
  r.live === 0 ? 0 : (r.after[key] - r.before[key]) / r.live

export const scaleSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const cap = size(options, 100_000, 15_000, 300)
  const limitMs = size(options, 120_000, 12_000, 5_000)
  const rows: Array<Row> = []
  const notes: Array<string> = []
  for (const trapHandler of [true, false]) {
    const flag = trapHandler ? "trap handler" : noTrapHandlerFlag
    const raw = await probe("raw", trapHandler, cap, limitMs)
    const ours = await probe("runtime", trapHandler, cap, limitMs)
    const rawName = `raw live 1-page instances (${flag})`
    const stop = (r: ScaleReport) =>
      r.stoppedBy === "cap"
        ? `reached the cap (${cap})`
        : r.stoppedBy === "time"
          ? `time limit (${limitMs} ms)`
          : r.stoppedBy === "crash"
            ? (r.error ?? "process died")
            : `failed: ${r.error ?? "?"}`
    rows.push(valueRow({ suite: SUITE, name: rawName, value: raw.live, unit: "count", note: stop(raw) }))
    rows.push(
      valueRow({
        suite: SUITE,
        name: `live agents per process (${flag})`,
        value: ours.live,
        unit: "count",
        baseline: rawName,
        target: { text: "100 000 live agents", met: () => ours.live >= 100_000 },
        note: `${stop(ours)}; ${(ours.elapsedMs / 1000).toFixed(1)} s; spawn cost ${(ours.firstChunkMsPerAgent * 1000).toFixed(0)} µs/agent for the first 500, ${(ours.lastChunkMsPerAgent * 1000).toFixed(0)} µs/agent for the last 500`
      })
    )
    if (trapHandler && raw.stoppedBy !== "crash" && ours.stoppedBy !== "crash") {
      const rawRss = "raw RSS per instance"
      const rawHeap = "raw V8 heap per instance"
      rows.push(valueRow({ suite: SUITE, name: rawRss, value: perAgent(raw, "rss"), unit: "bytes" }))
      rows.push(
        valueRow({
          suite: SUITE,
          name: "runtime RSS per agent",
          value: perAgent(ours, "rss"),
          unit: "bytes",
          baseline: rawRss
        })
      )
      rows.push(valueRow({ suite: SUITE, name: rawHeap, value: perAgent(raw, "heapUsed"), unit: "bytes" }))
      rows.push(
        valueRow({
          suite: SUITE,
          name: "runtime V8 heap per agent",
          value: perAgent(ours, "heapUsed"),
          unit: "bytes",
          baseline: rawHeap
        })
      )
      notes.push(
        `per-agent memory from ${ours.live} runtime agents / ${raw.live} raw instances (trap handler on), deltas after a full GC; linear memory (64 KiB each, never written) is not resident`
      )
    }
  }
  return { suite: SUITE, rows, notes }
}
