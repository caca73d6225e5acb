/**
 * Persistent swarm runs in-process (`SwarmOptions.persistence`): a fresh run
 * leaves its live agents saved (a `Shutdown` keeps them), `resume` continues
 * on them and reports the ones that cannot come back with a reason, and a
 * fresh run on the same store discards what it finds. Plus the CLI's
 * argument checks for the new options.
 */
import { NativeEngine } from "@agent-runtime/engine-native"
import {
  type AgentId,
  InstanceRepositories,
  InstanceRepository,
  MetricsRepositories,
  MetricsRepository,
  moduleId,
  ModuleRepositories,
  ModuleRepository
} from "@agent-runtime/domain"
import { layer as verifierLayer } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { formatText } from "../src/Report.js"
import { planCounts, runSwarm, type SwarmPersistence } from "../src/Swarm.js"

const PlatformLive = Layer.mergeAll(NativeEngine.layer, verifierLayer({ trustStore: testOnlyTrustStore() }))
const root = fileURLToPath(new URL("../../../", import.meta.url))

/** One in-memory store shared by several runs (each run builds the layer again, over the same maps). */
const sharedStore = () => {
  const instances = InstanceRepositories.makeMemory()
  const metrics = MetricsRepositories.makeMemory()
  const repositories = Layer.mergeAll(
    Layer.succeed(InstanceRepository, instances),
    Layer.succeed(MetricsRepository, metrics),
    Layer.succeed(ModuleRepository, ModuleRepositories.makeMemory())
  )
  return { instances, metrics, persistence: (resume: boolean): SwarmPersistence => ({ location: "test-store", repositories, resume }) }
}

describe("persistent runs", () => {
  it.live("fresh run saves, --resume continues on the saved agents (failures with reasons), a fresh run discards them", () =>
    Effect.gen(function*() {
      const store = sharedStore()
      const acks: Array<string> = []
      const first = yield* runSwarm({ agents: 40, seed: 3, persistence: store.persistence(false), onAck: (id, v) => acks.push(`${id} ${v}`) })
      expect(first.crashes, first.crashDetails.join("\n")).toBe(0)
      expect(first.persistence).toMatchObject({ store: "test-store", resumed: false, saved: 0, discarded: 0, restored: 0, restoreFailed: [] })
      expect(first.persistence.snapshotFailures).toBe(0)
      expect(first.persistence.metricsSamples).toBe(first.run.rounds)
      expect((yield* store.metrics.query({ from: 0, to: Number.MAX_SAFE_INTEGER })).length).toBe(first.run.rounds)
      // every state-changing call of counters, lifecycle, flaky and leaky agents was acknowledged
      expect(acks.length).toBeGreaterThan(100)
      expect(new Set(acks.map((a) => a.replace(/-\d+ .*$/, "")))).toEqual(new Set(["counter", "lifecycle", "flaky", "leaky"]))
      // a Shutdown keeps the state: every agent live at the end is saved; evicted ones (pressure, health, manual) are not
      const saved = yield* store.instances.listSaved
      expect(saved).toHaveLength(first.agents.liveBeforeShutdown)
      expect(saved.filter((id) => id.startsWith("flaky-"))).toEqual([])

      // one saved agent whose module the store does not have: it cannot come back, and the report says why
      const someone = yield* store.instances.loadState(saved.find((id) => id.startsWith("counter-"))!)
      const orphan = "counter-999" as AgentId
      yield* store.instances.saveState(orphan, {
        ...Option.getOrThrow(someone),
        agentId: orphan,
        moduleId: moduleId("missing@1.0.0#000000000000")
      })

      const notes: Array<string> = []
      const resumed = yield* runSwarm({
        agents: 40,
        seed: 3,
        persistence: store.persistence(true),
        onProgress: (e) => void (e._tag === "Note" && notes.push(e.message))
      })
      expect(resumed.crashes, resumed.crashDetails.join("\n")).toBe(0)
      // the peak reflects the resumed run too: at least the usage after the restore and after every round
      const roundPercents = notes.flatMap((m) => /^round \d+\/\d+: .*pool ([\d.]+) %/.exec(m)?.[1] ?? []).map(Number)
      expect(roundPercents).toHaveLength(resumed.run.rounds)
      expect(resumed.memory.usedAfterSpawn).toBeGreaterThan(0)
      expect(resumed.memory.peakUsed).toBeGreaterThanOrEqual(resumed.memory.usedAfterSpawn)
      expect(resumed.memory.peakUsed).toBeLessThanOrEqual(resumed.memory.poolBytes)
      expect((resumed.memory.peakUsed / resumed.memory.poolBytes) * 100).toBeGreaterThanOrEqual(Math.max(...roundPercents) - 0.05)
      expect(formatText(resumed)).not.toMatch(/peak 0(\.0)? %/)
      // the load note says what is true then: modules are validated, agents compile their variant later
      expect(notes.find((m) => m.startsWith("loaded "))).toMatch(/^loaded 6 modules \(validated; the restored agents compiled theirs when restored; 6 re-loads\)$/)
      expect(first.memory.peakUsed).toBeGreaterThanOrEqual(first.memory.usedAfterSpawn)
      expect(resumed.persistence).toMatchObject({ resumed: true, saved: saved.length + 1, discarded: 0, restored: saved.length })
      expect(resumed.persistence.restoreFailed).toHaveLength(1)
      expect(resumed.persistence.restoreFailed[0]!.agentId).toBe(orphan)
      expect(resumed.persistence.restoreFailed[0]!.reason).toMatch(/missing@1\.0\.0/)
      expect(resumed.agents.spawned).toBe(0)
      expect(resumed.agents.planned).toBe(saved.length)
      expect(Object.values(resumed.agents.byType).reduce((a, b) => a + b, 0)).toBe(saved.length)
      expect(resumed.verification.mismatches).toBe(0)
      expect(resumed.verification.checked).toBeGreaterThan(100)
      expect(resumed.invocations.ok).toBeGreaterThan(200)

      const fresh = yield* runSwarm({ agents: 40, seed: 3, persistence: store.persistence(false) })
      expect(fresh.crashes, fresh.crashDetails.join("\n")).toBe(0)
      expect(fresh.persistence).toMatchObject({ resumed: false, restored: 0, restoreFailed: [] })
      expect(fresh.persistence.discarded).toBe(fresh.persistence.saved)
      expect(fresh.persistence.discarded).toBeGreaterThan(0)
      expect(fresh.agents.spawned).toBe(40)
      expect(fresh.agents.byType).toEqual(Object.fromEntries(Object.entries(planCounts(40))))
    }).pipe(Effect.provide(PlatformLive)), 60_000)
})

describe("the CLI's options", () => {
  const main = (...args: Array<string>) =>
    spawnSync(process.execPath, ["--conditions=@agent-runtime/source", "--import", "tsx", "apps/swarm/src/main.ts", ...args], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000
    })

  it("bad values of --platform, --resume without --db, --rounds below 12 exit with 2 and say why", () => {
    for (
      const [args, message] of [
        [["--platform", "wasmtime"], /--platform must be native or node/],
        [["--resume"], /--resume needs --db/],
        [["--rounds", "3"], /--rounds must be an integer in \[12, /]
      ] as const
    ) {
      const run = main(...args)
      expect(run.status, run.stderr).toBe(2)
      expect(run.stderr).toMatch(message)
      expect(run.stdout).toBe("")
    }
  }, 60_000)

  it("--resume on a --db path that does not exist: one line, exit 1, the file is not created", () => {
    const dir = mkdtempSync(join(tmpdir(), "swarm-resume-"))
    try {
      const path = join(dir, "nope.sqlite")
      const run = main("--db", path, "--resume", "--quiet")
      expect(run.status, run.stderr).toBe(1)
      expect(run.stderr).toBe(`swarm: nothing to resume: ${path} does not exist\n`)
      expect(run.stdout).toBe("")
      expect(existsSync(path)).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("--help lists the new options", () => {
    const run = main("--help")
    expect(run.status).toBe(0)
    for (const option of ["--platform", "--db", "--resume", "--ack-log", "--rounds"]) expect(run.stdout).toContain(option)
  }, 30_000)
})
