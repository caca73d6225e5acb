/**
 * `pnpm start [--json] [--agents N] [--seed S] [--rounds R] [--tamper <agent>]…
 * [--platform native|node] [--db <path.sqlite> [--resume]] [--ack-log <file>] [--hosts N] [--quiet]`:
 * runs the swarm — by default on the embedded defaults: native engine,
 * in-memory repositories and bus, the TEST-ONLY trust store — and prints the
 * report. `--platform node` runs the agents on worker threads
 * (`@agent-runtime/engine-node`); `--db` keeps modules, agent state (saved
 * after every call) and metrics in a SQLite file (`@agent-runtime/repository-sqlite`)
 * and `--resume` continues the workload on the agents saved there, e.g. after a
 * crash, at the round it had reached; `--ack-log` with `--resume` compares the
 * stopped run's log with what came back.
 *
 * stdout carries only the report (text, or JSON with `--json`); progress
 * goes to stderr. Exit code 0 on success, 1 when the run crashed (crashes >
 * 0) or its database cannot be used (`--resume` on a file that does not
 * exist: "nothing to resume: <path> does not exist", the file is not created)
 * or its runtime cannot start ("the runtime cannot start: …"), 2 for bad
 * arguments. Worker threads are one setting (`ResourcePoolConfig`, = the
 * cores) for the node engine and the runtime's pool.
 *
 * @since 0.1.0
 */
import { layerPoolConfig } from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import { NodeEngine } from "@agent-runtime/engine-node"
import { SqliteDatabase, SqliteRepositories } from "@agent-runtime/repository-sqlite"
import { layer as verifierLayer } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs"
import { availableParallelism } from "node:os"
import { parseArgs } from "node:util"
import * as AckLog from "./AckLog.js"
import * as Progress from "./Progress.js"
import { formatText, toJson } from "./Report.js"
import * as SqliteCheckpoints from "./SqliteCheckpoints.js"
import {
  agentTypes,
  DEFAULT_AGENTS,
  DEFAULT_ROUNDS,
  DEFAULT_SEED,
  MIN_AGENTS,
  runSwarm,
  type SwarmOptions
} from "./Swarm.js"

/** More agents than this would not fit one process (V8 reserves address space per linear memory). */
const MAX_AGENTS = 10_000
const usage = `usage: pnpm start [options]

  --json             print only the report, as JSON, on stdout
  --agents <n>       agents to spawn (default ${DEFAULT_AGENTS}, ${MIN_AGENTS}..${MAX_AGENTS})
  --seed <n>         seed of the workload (default ${DEFAULT_SEED}; resumed: the stopped workload's)
  --rounds <n>       workload rounds (default ${DEFAULT_ROUNDS}, at least ${DEFAULT_ROUNDS}; resumed: the stopped workload's)
  --tamper <agent>   flip one byte of that agent's module before loading (repeatable): ${agentTypes.join(", ")}
  --platform <p>     native (default: in-process WebAssembly) or node (agents on worker threads)
  --db <path>        keep modules, agent state (saved after every call) and metrics in this SQLite
                     file; a fresh run first discards agents an earlier run saved there
  --resume           with --db: spawn nothing, continue the workload on the agents saved there (after a
                     crash, too) at the round it had reached; the file must exist
  --ack-log <file>   append "<agentId> <value>" for every acknowledged state-changing call (and
                     "<agentId> evicted <reason>" when an eviction deletes saved state); a fresh --db run
                     starts it empty, --resume first compares it with what came back
  --hosts <n>        run the swarm's agents and tasks across n host processes on a local nats-server -js,
                     SIGKILL one mid-run and report what moved and what was lost (n: 2..16)
  --quiet            no progress on stderr
  -h, --help         this text
`

const fail = (message: string): never => {
  process.stderr.write(`swarm: ${message}\n\n${usage}`)
  process.exit(2)
}

const integer = (
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER
): number => {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    return fail(`--${name} must be an integer in [${min}, ${max}], got "${value}"`)
  }
  return n
}

const parsed = (() => {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      options: {
        json: { type: "boolean", default: false },
        agents: { type: "string" },
        seed: { type: "string" },
        rounds: { type: "string" },
        tamper: { type: "string", multiple: true },
        platform: { type: "string", default: "native" },
        db: { type: "string" },
        resume: { type: "boolean", default: false },
        "ack-log": { type: "string" },
        hosts: { type: "string" },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e))
  }
})()

if (parsed.help) {
  process.stdout.write(usage)
  process.exit(0)
}

const agents = integer("agents", parsed.agents, DEFAULT_AGENTS, MIN_AGENTS, MAX_AGENTS)
const seed = integer("seed", parsed.seed, DEFAULT_SEED, 0)
const rounds = integer("rounds", parsed.rounds, DEFAULT_ROUNDS, DEFAULT_ROUNDS)
const platform = parsed.platform
if (platform !== "native" && platform !== "node") fail(`--platform must be native or node, got "${platform}"`)
if (parsed.db === "") fail("--db needs a file path")
if (parsed.resume && parsed.db === undefined)
  fail("--resume needs --db <path.sqlite> (the agents to resume are saved there)")
// checked before anything opens the file: opening a SQLite database would create it
if (parsed.resume && parsed.db !== undefined && !existsSync(parsed.db)) {
  process.stderr.write(`swarm: nothing to resume: ${parsed.db} does not exist\n`)
  process.exit(1)
}
const tamper = parsed.tamper ?? []
for (const name of tamper) {
  if (!(agentTypes as ReadonlyArray<string>).includes(name))
    fail(`--tamper: unknown agent "${name}" (one of ${agentTypes.join(", ")})`)
}

// --hosts: the multi-host mode (MultiHost.ts), its own run and report
if (parsed.hosts !== undefined) {
  const hosts = integer("hosts", parsed.hosts, 3, 2, 16)
  if (parsed.db !== undefined || parsed["ack-log"] !== undefined || platform !== "native" || tamper.length > 0) {
    fail(
      "--hosts runs the agents on the native engine over NATS: it takes no --db, --resume, --ack-log, --platform node or --tamper"
    )
  }
  const { runMultiHostCli } = await import("./MultiHost.js")
  process.exit(await runMultiHostCli({ hosts, agents, seed, rounds, json: parsed.json, quiet: parsed.quiet }))
}

const progress = Progress.make(
  process.stderr,
  Progress.modeFor({ json: parsed.json, quiet: parsed.quiet, tty: process.stderr.isTTY === true })
)

/**
 * Worker threads, set once (`ResourcePoolConfig.maxThreads` = the cores): the node engine's layer sizes its
 * worker pool from it and the runtime's pool allows that many threads (it refuses an engine running more).
 */
const PoolConfig = layerPoolConfig({ maxThreads: availableParallelism() })

/**
 * The engine (native: in-process; node: worker threads), Node's platform services (`node:crypto` SHA-256 for
 * content addressing; the node engine's layer includes them) and the TEST-ONLY trust store (never trust it in
 * production).
 */
const PlatformLive = Layer.mergeAll(
  platform === "node" ? NodeEngine.layer : Layer.merge(NativeEngine.layer, NodeEngine.layerPlatform),
  verifierLayer({ trustStore: testOnlyTrustStore() })
).pipe(Layer.provideMerge(PoolConfig)) // the setting reaches the engine's layer and the runtime's (built by runSwarm)

const ackLogPath = parsed["ack-log"]
/** `--ack-log` with `--resume`: what the stopped run acknowledged (read before this run appends to it). */
const acknowledged =
  ackLogPath !== undefined && parsed.resume && existsSync(ackLogPath)
    ? AckLog.parse(readFileSync(ackLogPath, "utf8"))
    : undefined
/**
 * `--ack-log`: one line per acknowledged call or state-deleting eviction, appended with a plain write
 * (no fsync: it survives the process, not the machine). A fresh `--db` run discards the saved agents,
 * so it starts the log empty too.
 */
const ackFd =
  ackLogPath === undefined
    ? undefined
    : (() => {
        try {
          return openSync(ackLogPath, parsed.db !== undefined && !parsed.resume ? "w" : "a")
        } catch (e) {
          return fail(`--ack-log: cannot open "${ackLogPath}": ${e instanceof Error ? e.message : String(e)}`)
        }
      })()

/** `--db`: the repositories and the workload's checkpoint on one connection to the file. */
const persistence = (path: string): SwarmOptions["persistence"] => {
  const database = SqliteDatabase.layer({ path })
  return {
    location: path,
    repositories: SqliteRepositories.layerFromDatabase.pipe(Layer.provide(database)),
    checkpoints: SqliteCheckpoints.layerFromDatabase.pipe(Layer.provide(database)),
    resume: parsed.resume
  }
}

const options: SwarmOptions = {
  agents,
  seed,
  // resumed without --rounds: the stopped workload's rounds
  rounds: parsed.rounds === undefined ? undefined : rounds,
  tamper,
  onProgress: progress.onProgress,
  persistence: parsed.db === undefined ? undefined : persistence(parsed.db),
  onAck: ackFd === undefined ? undefined : (agentId, value) => void writeSync(ackFd, AckLog.ackLine(agentId, value)),
  onEvicted:
    ackFd === undefined ? undefined : (agentId, reason) => void writeSync(ackFd, AckLog.evictedLine(agentId, reason)),
  acknowledged
}

// Keeps the event loop alive until the run has settled: the Node engine terminates its idle workers
// (unref'd) on release and awaits their exit, which does not keep the loop alive by itself; without
// this the process could drain its loop and exit (code 13) before the report is printed.
const keepAlive = setInterval(() => {}, 1 << 30)

try {
  const outcome = await Effect.runPromise(Effect.result(runSwarm(options)).pipe(Effect.provide(PlatformLive)))
  progress.close()
  if (outcome._tag === "Failure") {
    const failure = outcome.failure
    process.stderr.write(
      failure._tag === "RepositoryError"
        ? `swarm: the database ${parsed.db ?? ""} cannot be used: ${failure.message}\n`
        : `swarm: the runtime cannot start: ${failure.message}\n`
    )
    process.exitCode = 1
  } else {
    const report = outcome.success
    process.stdout.write(`${parsed.json ? toJson(report) : formatText(report)}\n`)
    process.exitCode = report.crashes > 0 ? 1 : 0
  }
} catch (e) {
  progress.close()
  process.stderr.write(`swarm: crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exitCode = 1
} finally {
  clearInterval(keepAlive)
  if (ackFd !== undefined) closeSync(ackFd)
}
