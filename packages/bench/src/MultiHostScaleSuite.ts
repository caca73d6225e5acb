/**
 * Suite `multihost` (issue 14, "Done when"): live agents on one machine
 * across several host processes on one nats-server. V8 caps one process at
 * ~12 800 live WebAssembly memories (suite `scale`), so a machine reaches
 * the goal — 100 000 live agents per machine, 1 000 000 registered through
 * passivation — with several host processes. Each host
 * (`MultiHostScaleHost.ts`) is a runtime on the native engine whose modules,
 * agent states, events and leases live on the one `nats-server -js` this
 * suite starts on a free port (Debian's `nats-server`; `$NATS_SERVER`
 * overrides the binary). The hosts spawn concurrently; then each registers
 * more agents through passivation (snapshots in KV, instances released).
 *
 * Rows: live agents per machine (sum over hosts) against the goal; memory
 * per live agent — the hosts' RSS after a full GC divided by their live
 * agents, and the RSS growth per agent (RSS after − RSS before the first
 * spawn) / agents, in bytes; the nats-server's RSS; agents registered
 * (live + passivated) against the goal. Targets are reported, never
 * asserted. Without `nats-server` the suite reports nothing and says why.
 *
 * Sizes: full 8 hosts × 12 500 live (+ 120 000 passivated each), `--quick`
 * 3 hosts × 400 (+ 400), the bench smoke test (`smoke: true`) 2 hosts × 10
 * (+ 10).
 *
 * @since 0.1.0
 */
import { natsServerBinary, type RunningNatsServer, startNatsServer } from "@agent-runtime/nats/server"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { ChildProcesses } from "./ChildProcesses.js"
import { type Row, type RunOptions, size, type SuiteResult, valueRow } from "./Measure.js"
import type { HostScaleConfig, HostScaleReport } from "./MultiHostScaleHost.js"

const SUITE = "multihost"
const here = path.dirname(fileURLToPath(import.meta.url))
const launcher = path.join(here, "..", "bin", "tsx.mjs")
const hostEntry = path.join(here, "MultiHostScaleHost.ts")

/** The goals of issue 14: live agents per machine, and agents registered through passivation. */
export const LIVE_GOAL = 100_000
export const REGISTERED_GOAL = 1_000_000

/** RSS of a process in bytes, from `/proc/<pid>/status` (undefined where there is no procfs). */
const rssOf = (pid: number | undefined): number | undefined => {
  if (pid === undefined) return undefined
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/** Every child of this run, killed on dispose, on SIGINT/SIGTERM and at exit. */
const children = new ChildProcesses()

/** Runs one host until its report (then stops it with SIGTERM). */
const runHost = (config: HostScaleConfig, timeoutMs: number): Promise<HostScaleReport> =>
  new Promise((resolve, reject) => {
    const child = children.add(
      spawn(
        process.execPath,
        ["--expose-gc", "--conditions=@agent-runtime/source", launcher, hostEntry, JSON.stringify(config)],
        { stdio: ["pipe", "pipe", "pipe"] }
      )
    )
    let out = ""
    let err = ""
    let done = false
    const timer = setTimeout(
      () => finish(new Error(`host ${config.hostId} gave no report within ${timeoutMs} ms`)),
      timeoutMs
    )
    const finish = (result: HostScaleReport | Error) => {
      if (done) return
      done = true
      clearTimeout(timer)
      child.kill("SIGTERM")
      if (result instanceof Error) reject(result)
      else resolve(result)
    }
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
      let nl: number
      while ((nl = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, nl)
        out = out.slice(nl + 1)
        try {
          const parsed = JSON.parse(line) as HostScaleReport | { progress: number }
          if ("hostId" in parsed) finish(parsed)
        } catch {
          // not a protocol line
        }
      }
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err = (err + chunk).slice(-2000)))
    child.once("exit", (code, signal) =>
      finish(new Error(`host ${config.hostId} exited (${code ?? signal}) before reporting: ${err.trim().slice(-600)}`))
    )
  })

const format = (n: number) => Math.round(n).toLocaleString("en-US")

export const multiHostScaleSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const notes: Array<string> = []
  const binary = natsServerBinary()
  if (binary === undefined) {
    notes.push(
      "nats-server not found; install it (apt-get install -y nats-server) or set $NATS_SERVER to measure the multihost suite"
    )
    return { suite: SUITE, rows, notes }
  }
  // the bench smoke test: 2 hosts × 10 live + 10 passivated agents (the host processes' start-up is most of its ~15 s)
  const smoke = options.smoke === true
  const hosts = smoke ? 2 : size(options, 8, 3)
  const cap = smoke ? 10 : size(options, 12_500, 400)
  const passivate = smoke ? 10 : size(options, 120_000, 400)
  const limitMs = size(options, 300_000, 20_000)
  children.open()
  let nats: RunningNatsServer | undefined
  try {
    nats = await startNatsServer({ binary })
    const url = nats.url
    const names = `mhs${process.pid}`
    const reports = await Promise.all(
      Array.from({ length: hosts }, (_, i) =>
        runHost({ url, hostId: `host${i}`, names, cap, passivate, limitMs }, 2 * limitMs + 120_000)
      )
    )
    const natsRss = rssOf(nats.pid())
    const live = reports.reduce((s, r) => s + r.live, 0)
    const registered = reports.reduce((s, r) => s + r.registered, 0)
    const rss = reports.reduce((s, r) => s + r.after.rss, 0)
    const growth = reports.reduce((s, r) => s + (r.after.rss - r.before.rss), 0)
    const stops = reports.map(
      (r) =>
        `${r.hostId}: ${r.live} live (${r.stoppedBy === "cap" ? "cap" : r.stoppedBy === "time" ? `time limit ${limitMs} ms` : r.error}, ${(r.elapsedMs / 1000).toFixed(1)} s)`
    )
    rows.push(
      valueRow({
        suite: SUITE,
        name: `live agents per machine (${hosts} host processes, one nats-server)`,
        value: live,
        unit: "count",
        target: { text: `${format(LIVE_GOAL)} live agents per machine`, met: () => live >= LIVE_GOAL },
        note: `cap ${format(cap)} per host; ${stops.join("; ")}`
      })
    )
    if (live > 0) {
      rows.push(
        valueRow({
          suite: SUITE,
          name: "host RSS per live agent (RSS of the hosts / live agents)",
          value: rss / live,
          unit: "bytes",
          note: `${hosts} hosts, ${format(rss / 1_048_576)} MiB RSS in all after a full GC, each host's runtime + NATS client included`
        })
      )
      rows.push(
        valueRow({
          suite: SUITE,
          name: "host RSS growth per live agent ((RSS after − RSS before the first spawn) / live agents)",
          value: growth / live,
          unit: "bytes",
          note: "a 1-page memory that was never written is not resident: this is the runtime's, the engine's and the lease's overhead"
        })
      )
    }
    if (natsRss !== undefined) {
      rows.push(
        valueRow({
          suite: SUITE,
          name: "nats-server RSS (leases, snapshots, events of the run)",
          value: natsRss,
          unit: "bytes"
        })
      )
    }
    const passivated = reports.reduce((s, r) => s + r.passivated, 0)
    const passivationMs = Math.max(...reports.map((r) => r.passivationMs))
    const pErrors = reports.flatMap((r) =>
      r.passivationError === undefined ? [] : [`${r.hostId}: ${r.passivationError}`]
    )
    rows.push(
      valueRow({
        suite: SUITE,
        name: `agents registered per machine through passivation (live + passivated, ${hosts} hosts)`,
        value: registered,
        unit: "count",
        target: { text: `${format(REGISTERED_GOAL)} registered`, met: () => registered >= REGISTERED_GOAL },
        note: `${format(passivated)} passivated (snapshots in KV), ${format(registered - passivated)} live at the end; ${format(live + hosts * passivate)} asked for this run; passivation phase ${(
          passivationMs / 1000
        ).toFixed(
          1
        )} s (${format(passivationMs > 0 ? (registered - live) / (passivationMs / 1000) : 0)} agents/s added per machine)${pErrors.length > 0 ? `; stopped: ${pErrors.join("; ")}` : ""}`
      })
    )
    notes.push(
      `${hosts} host processes (native engine, signed 1-page grower agents: 1 MiB limit, 64 KiB reserved, each spawn leased in KV and announced on JetStream) on one nats-server; memory after a full GC in each host`
    )
  } finally {
    await children.close()
    await nats?.dispose()
  }
  return { suite: SUITE, rows, notes }
}
