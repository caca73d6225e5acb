/**
 * Suite `swarm` (issue 13 item 7): the swarm demo (`apps/swarm`, what
 * `./dev start` runs) in memory against the same run with `--db` — modules,
 * agent state and metrics in a SQLite file, every call's resulting state
 * saved before the call returns — in the same bench run, so the ratio is
 * taken under the same machine load. Each run is a fresh child process
 * (`node --conditions=@agent-runtime/source bin/tsx.mjs apps/swarm/src/main.ts
 * --json --quiet`), the `--db` one on a fresh file in a temporary folder;
 * in-memory and `--db` runs alternate, so a load spike hits both sides.
 *
 * Rows: the swarm's own time (`SwarmReport.durationMs`: from its start to
 * its report, the process's start-up and module loading left out), in ms,
 * median over the rounds, in memory (the baseline) and with `--db` (target
 * ≤ 1.5× the in-memory run; the note lists each round's paired ratio); the
 * SQLite file's size after the `--db` run (the database file plus its
 * `-wal`, bytes) against the agents' live memory just before the shutdown
 * (`SwarmReport.memory.liveBeforeShutdown`, bytes; target: no larger than
 * that plus 8 MiB of overhead). A run that crashes or reports crashes fails
 * the suite (no row is faked). Targets are reported, never asserted.
 *
 * Sizes: full 593 agents (the default) × 3 rounds, `--quick` 593 × 1, the
 * bench smoke test (`smoke: true`) 12 agents × 1.
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { ChildProcesses } from "./ChildProcesses.js"
import { type Row, type RunOptions, size, type SuiteResult, valueRow } from "./Measure.js"

const SUITE = "swarm"
const here = path.dirname(fileURLToPath(import.meta.url))
const launcher = path.join(here, "..", "bin", "tsx.mjs")
/** The swarm's command-line entry, in this workspace (the bench is private: it runs inside the repository). */
export const swarmEntry: string = path.join(here, "..", "..", "..", "apps", "swarm", "src", "main.ts")

/** What the suite reads from one run's JSON report (`SwarmReport`). */
interface SwarmRun {
  /** The swarm's own time, ms. */
  readonly durationMs: number
  /** Wall time of the child process, ms (start-up included). */
  readonly wallMs: number
  readonly liveBytes: number
  readonly liveAgents: number
  readonly invocations: number
  readonly snapshotFailures: number
}

/** Every child of this suite, killed on SIGINT/SIGTERM, at exit and when the suite ends. */
const children = new ChildProcesses()

/** Runs the swarm once in a child process and reads its JSON report; rejects when it fails or reports crashes. */
const runSwarm = (args: ReadonlyArray<string>, timeoutMs: number): Promise<SwarmRun> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = children.add(
      spawn(
        process.execPath,
        ["--conditions=@agent-runtime/source", launcher, swarmEntry, "--json", "--quiet", ...args],
        { stdio: ["ignore", "pipe", "pipe"] }
      )
    )
    let out = ""
    let err = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`swarm ${args.join(" ")} gave no report within ${timeoutMs} ms`))
    }, timeoutMs)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err = (err + chunk).slice(-2000)))
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      const wallMs = performance.now() - started
      let report: {
        durationMs: number
        crashes: number
        crashDetails: ReadonlyArray<string>
        agents: { liveBeforeShutdown: number }
        memory: { liveBeforeShutdown: number }
        invocations: { total: number }
        persistence: { snapshotFailures: number }
      }
      try {
        report = JSON.parse(out)
      } catch {
        reject(
          new Error(`swarm ${args.join(" ")} exited (${code ?? signal}) without a report: ${err.trim().slice(-600)}`)
        )
        return
      }
      if (report.crashes > 0) {
        reject(
          new Error(`swarm ${args.join(" ")} reported ${report.crashes} crashes: ${report.crashDetails.join("; ")}`)
        )
        return
      }
      resolve({
        durationMs: report.durationMs,
        wallMs,
        liveBytes: report.memory.liveBeforeShutdown,
        liveAgents: report.agents.liveBeforeShutdown,
        invocations: report.invocations.total,
        snapshotFailures: report.persistence.snapshotFailures
      })
    })
  })

const fileBytes = (file: string): number => {
  let total = 0
  for (const f of [file, `${file}-wal`]) {
    try {
      total += fs.statSync(f).size
    } catch {
      // no such file (the WAL is checkpointed and removed when the last connection closes)
    }
  }
  return total
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const percentile99 = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!
}

const MiB = 1_048_576
/** The overhead the file may hold beyond the agents' live memory: modules, metrics, the B-trees. */
const FILE_OVERHEAD = 8 * MiB

const timeRow = (name: string, runs: ReadonlyArray<SwarmRun>, extra: Partial<Row>): Row => {
  const times = runs.map((r) => r.durationMs)
  return {
    suite: SUITE,
    name,
    median: median(times),
    p99: percentile99(times),
    samples: times.length,
    batch: 1,
    unit: "ms",
    ...extra
  }
}

export const swarmSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const notes: Array<string> = []
  if (!fs.existsSync(swarmEntry)) {
    notes.push(`the swarm's entry ${swarmEntry} is not there (the bench runs inside the repository)`)
    return { suite: SUITE, rows, notes }
  }
  const smoke = options.smoke === true
  const agents = smoke ? 12 : 593
  const rounds = size(options, 3, 1, 1)
  const timeoutMs = smoke ? 120_000 : 600_000
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-swarm-"))
  children.open()
  try {
    const memory: Array<SwarmRun> = []
    const db: Array<SwarmRun> = []
    const files: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      memory.push(await runSwarm(["--agents", String(agents)], timeoutMs))
      const file = path.join(dir, `swarm-${round}.sqlite`)
      db.push(await runSwarm(["--agents", String(agents), "--db", file], timeoutMs))
      files.push(fileBytes(file))
    }
    const ratios = db.map((d, i) => d.durationMs / memory[i]!.durationMs)
    const memoryName = `${agents} agents, in memory`
    rows.push(
      timeRow(memoryName, memory, {
        note: `swarm's own time; process wall ${memory.map((r) => (r.wallMs / 1000).toFixed(1)).join(", ")} s; ${memory[0]!.invocations} invocations`
      })
    )
    rows.push(
      timeRow(`${agents} agents, --db (SQLite, state saved after every call)`, db, {
        baseline: memoryName,
        target: { text: "≤ 1.5× in memory", met: (ratio) => ratio <= 1.5 },
        note: `paired ratios ${ratios.map((r) => `${r.toFixed(2)}×`).join(", ")} (median ${median(ratios).toFixed(2)}×); ${db.reduce((s, r) => s + r.snapshotFailures, 0)} snapshot failures`
      })
    )
    const last = db[db.length - 1]!
    const liveName = `${agents} agents, live memory before shutdown (--db run)`
    rows.push(
      valueRow({
        suite: SUITE,
        name: liveName,
        value: last.liveBytes,
        unit: "bytes",
        note: `${last.liveAgents} live agents`
      })
    )
    const file = files[files.length - 1]!
    rows.push(
      valueRow({
        suite: SUITE,
        name: `${agents} agents, SQLite file after the --db run (database + WAL)`,
        value: file,
        unit: "bytes",
        baseline: liveName,
        target: {
          text: "≤ live memory + 8 MiB",
          met: (_ratio, value) => value <= last.liveBytes + FILE_OVERHEAD
        },
        note: `${(file / MiB).toFixed(1)} MiB for ${(last.liveBytes / MiB).toFixed(1)} MiB of live memory`
      })
    )
  } finally {
    await children.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return { suite: SUITE, rows, notes }
}
