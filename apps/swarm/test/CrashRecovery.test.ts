/**
 * Crash recovery, end to end (issue 3, item 3): a child process runs the swarm
 * with `--db` (state saved after every call) and `--ack-log` (one line per
 * acknowledged state-changing call, written after the call returned), is
 * killed with SIGKILL in the middle of its workload, and the database is
 * opened again. Every agent with an acknowledged value comes back with at
 * least that value — at most one call ahead: a call whose state was saved but
 * whose ack line was not written yet — and the value read from the restored
 * agent is the one stored in the database. Then `--resume` continues the
 * workload on the restored agents with every result checked. On both
 * platforms (native, node).
 */
import { NativeEngine } from "@agent-runtime/engine-native"
import { NodeEngine } from "@agent-runtime/engine-node"
import {
  type AgentId,
  AgentRuntime,
  AgentRuntimes,
  EventBuses,
  ExecutionAuthorizers,
  InstanceRepository,
  type InstanceSnapshot,
  type WasmEngine
} from "@agent-runtime/domain"
import { SqliteRepositories } from "@agent-runtime/repository-sqlite"
import { layer as verifierLayer } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { SwarmReport } from "../src/Report.js"

const root = fileURLToPath(new URL("../../../", import.meta.url))

/** Kill once the ack log holds this many acknowledged calls over at least `MIN_AGENTS_ACKED` agents. */
const MIN_ACKS = 200
const MIN_AGENTS_ACKED = 20
/** More rounds than the run can reach before the kill: the workload is always mid-way (leak rounds are the last three). */
const ENDLESS_ROUNDS = "100000"
/** Generous: the child starts through tsx (and bundles the Node engine's worker) on a possibly loaded machine. */
const ACK_TIMEOUT_MS = 90_000

type Platform = "native" | "node"

const swarmArgs = (platform: Platform, db: string, extra: ReadonlyArray<string>) => [
  "--conditions=@agent-runtime/source",
  "--import",
  "tsx",
  "apps/swarm/src/main.ts",
  "--platform",
  platform,
  "--db",
  db,
  "--agents",
  "60",
  "--seed",
  "17",
  ...extra
]

/** Complete `agentId value` lines (a line cut by the kill has no newline yet and is ignored). */
const readAcks = (file: string): Array<{ readonly agentId: string; readonly value: number }> => {
  if (!existsSync(file)) return []
  const text = readFileSync(file, "utf8")
  const complete = text.slice(0, text.lastIndexOf("\n") + 1)
  return complete.split("\n").filter((l) => l.length > 0).map((line) => {
    const match = /^(\S+) (-?\d+)$/.exec(line)
    if (match === null) throw new Error(`malformed ack line: ${JSON.stringify(line)}`)
    return { agentId: match[1]!, value: Number(match[2]) }
  })
}

const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode })
    else child.once("exit", (code, signal) => resolve({ code, signal }))
  })

/** Starts the swarm, waits for enough acknowledged calls, kills it with SIGKILL; returns the last acknowledged value per agent. */
const runAndKill = async (platform: Platform, db: string, ackLog: string) => {
  const child = spawn(process.execPath, swarmArgs(platform, db, ["--ack-log", ackLog, "--rounds", ENDLESS_ROUNDS, "--quiet"]), {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
  const deadline = Date.now() + ACK_TIMEOUT_MS
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the swarm ended before it was killed (exit ${child.exitCode}, ${child.signalCode}):\n${stderr}`)
      }
      const acks = readAcks(ackLog)
      if (acks.length >= MIN_ACKS && new Set(acks.map((a) => a.agentId)).size >= MIN_AGENTS_ACKED) break
      if (Date.now() > deadline) throw new Error(`only ${acks.length} acks after ${ACK_TIMEOUT_MS} ms:\n${stderr}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  } finally {
    child.kill("SIGKILL")
  }
  const exit = await exited(child)
  expect(exit.signal, `the swarm was not killed mid-workload:\n${stderr}`).toBe("SIGKILL")
  // read after the process is gone: every line it wrote before it died
  const last = new Map<string, number>()
  for (const ack of readAcks(ackLog)) last.set(ack.agentId, ack.value)
  return last
}

const engineOf = (platform: Platform): Layer.Layer<WasmEngine> => platform === "node" ? NodeEngine.layer : NativeEngine.layer

/**
 * The database opened again in this process with `restoreOnStart`: every
 * saved agent, its stored snapshot, and the state value read from the
 * restored agent (`get` / `state` / `leaked`; flaky agents have no read-only
 * getter and are not read).
 */
const reopen = (platform: Platform, db: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const repositories = yield* Layer.build(SqliteRepositories.layer({ path: db }))
      const instances = Context.get(repositories, InstanceRepository)
      const stored = new Map<string, InstanceSnapshot>()
      for (const agentId of yield* instances.listSaved) {
        const snapshot = yield* instances.loadState(agentId)
        if (Option.isSome(snapshot)) stored.set(agentId, snapshot.value)
      }
      const runtimeLayer = AgentRuntimes.layer({ name: "crash-check", persistence: { restoreOnStart: true } }).pipe(
        Layer.provide(
          Layer.mergeAll(
            engineOf(platform),
            verifierLayer({ trustStore: testOnlyTrustStore() }),
            Layer.succeedContext(repositories),
            EventBuses.layerMemory,
            ExecutionAuthorizers.layerAllowAll
          )
        )
      )
      return yield* Effect.gen(function*() {
        const runtime = yield* AgentRuntime
        const live = new Map((yield* runtime.agents).map((i) => [i.agentId as string, i]))
        const failed = (yield* runtime.restoreAll).failed
        const values = new Map<string, number>()
        for (const [agentId, info] of live) {
          const getter = agentId.startsWith("counter-") ? "get" : agentId.startsWith("lifecycle-") ? "state" : agentId.startsWith("leaky-") ? "leaked" : undefined
          if (getter === undefined) continue
          if (info.state === "Paused") yield* runtime.resume(agentId as AgentId)
          const [value] = yield* runtime.invoke(agentId as AgentId, getter)
          values.set(agentId, value as number)
        }
        return { stored, live, failed, values }
      }).pipe(Effect.provide(runtimeLayer))
    })
  )

/** How far one more (saved but not yet acknowledged) call can move each type's value in this workload. */
const oneCallAhead: Readonly<Record<string, number>> = {
  counter: 100, // increment (+1) or add(k), k ≤ 100
  lifecycle: 1, // bump
  leaky: 32 // leak(32) outside the leak rounds, which the killed run never reaches
}

const crashTest = (platform: Platform) =>
  it.live(`${platform}: a swarm killed mid-workload comes back with every acknowledged state, and --resume continues it`, () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), `swarm-crash-${platform}-`))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const db = join(dir, "s.sqlite")
      const acked = yield* Effect.promise(() => runAndKill(platform, db, join(dir, "acks")))
      expect(acked.size).toBeGreaterThanOrEqual(MIN_AGENTS_ACKED)

      const { stored, live, failed, values } = yield* reopen(platform, db)
      expect(failed).toEqual([])
      let checked = 0
      for (const [agentId, last] of acked) {
        const type = agentId.replace(/-\d+$/, "")
        const ahead = oneCallAhead[type]
        // flaky agents may have been evicted (HealthFailure deletes their saved state) and have no getter
        if (ahead === undefined) continue
        expect(live.has(agentId), `${agentId} (last acknowledged value ${last}) did not come back`).toBe(true)
        const value = values.get(agentId)!
        expect(value, `${agentId}: restored ${value}, last acknowledged ${last}`).toBeGreaterThanOrEqual(last)
        expect(value - last, `${agentId}: restored ${value}, more than one call past the last acknowledged ${last}`)
          .toBeLessThanOrEqual(ahead)
        // the value the agent answers with is the one in the database (a global of its stored snapshot)
        expect(Object.values(stored.get(agentId)!.state.globals), `${agentId}: ${value} is not in its stored snapshot`).toContain(value)
        checked++
      }
      expect(checked).toBeGreaterThanOrEqual(10)

      // the CLI on the same database: restores every saved agent and continues, every result checked
      const resumed = yield* Effect.promise(() =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, swarmArgs(platform, db, ["--resume", "--json"]), { cwd: root })
          let stdout = ""
          let stderr = ""
          child.stdout.on("data", (c: Buffer) => void (stdout += c.toString()))
          child.stderr.on("data", (c: Buffer) => void (stderr += c.toString()))
          child.on("exit", (code) => resolve({ code, stdout, stderr }))
        })
      )
      expect(resumed.code, resumed.stderr).toBe(0)
      const report = JSON.parse(resumed.stdout) as SwarmReport
      expect(report.persistence).toMatchObject({ store: db, resumed: true, restoreFailed: [], snapshotFailures: 0 })
      expect(report.persistence.restored).toBe(stored.size)
      expect(report.agents.spawned).toBe(0)
      expect(report.crashes, report.crashDetails.join("\n")).toBe(0)
      expect(report.verification.mismatches).toBe(0)
      expect(report.verification.checked).toBeGreaterThan(100)
      expect(report.run.platform).toBe(platform === "node" ? "Node" : "Native")
    }).pipe(Effect.scoped), 240_000)

describe("crash recovery (SIGKILL mid-workload, --db, then --resume)", () => {
  crashTest("native")
  crashTest("node")
})
