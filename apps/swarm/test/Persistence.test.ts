/**
 * Persistent swarm runs in-process (`SwarmOptions.persistence`): a fresh run
 * leaves its live agents saved (a `Shutdown` keeps them), `resume` continues
 * on them and reports the ones that cannot come back with a reason, and a
 * fresh run on the same store discards what it finds; a run stopped
 * mid-workload is resumed at the round it was in, and the stopped run's ack
 * log is compared with what came back. Plus the CLI's argument checks for
 * the new options.
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
import { SqliteDatabase } from "@agent-runtime/repository-sqlite"
import { layer as verifierLayer } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as AckLog from "../src/AckLog.js"
import { Checkpoints, makeMemoryCheckpoints, resumePosition } from "../src/Persistence.js"
import type { ProgressEvent } from "../src/Progress.js"
import { formatText } from "../src/Report.js"
import { planCounts, runSwarm, type SwarmPersistence } from "../src/Swarm.js"

const PlatformLive = Layer.mergeAll(NativeEngine.layer, verifierLayer({ trustStore: testOnlyTrustStore() }))
const root = fileURLToPath(new URL("../../../", import.meta.url))

/** One in-memory store shared by several runs (each run builds the layer again, over the same maps), with a checkpoint store. */
const sharedStore = () => {
  const instances = InstanceRepositories.makeMemory()
  const metrics = MetricsRepositories.makeMemory()
  const checkpoints = makeMemoryCheckpoints()
  const repositories = Layer.mergeAll(
    Layer.succeed(InstanceRepository, instances),
    Layer.succeed(MetricsRepository, metrics),
    Layer.succeed(ModuleRepository, ModuleRepositories.makeMemory())
  )
  return {
    instances,
    metrics,
    checkpoints,
    persistence: (resume: boolean): SwarmPersistence => ({
      location: "test-store",
      repositories,
      checkpoints: Layer.succeed(Checkpoints, checkpoints),
      resume
    })
  }
}

describe("persistent runs", () => {
  it.live(
    "fresh run saves, --resume continues on the saved agents (failures with reasons), a fresh run discards them",
    () =>
      Effect.gen(function* () {
        const store = sharedStore()
        const acks: Array<string> = []
        const first = yield* runSwarm({
          agents: 40,
          seed: 3,
          persistence: store.persistence(false),
          onAck: (id, v) => acks.push(`${id} ${v}`)
        })
        expect(first.crashes, first.crashDetails.join("\n")).toBe(0)
        expect(first.persistence).toMatchObject({
          store: "test-store",
          resumed: false,
          saved: 0,
          discarded: 0,
          restored: 0,
          restoreFailed: []
        })
        expect(first.persistence.snapshotFailures).toBe(0)
        expect(first.persistence.metricsSamples).toBe(first.run.rounds)
        expect((yield* store.metrics.query({ from: 0, to: Number.MAX_SAFE_INTEGER })).length).toBe(first.run.rounds)
        // every state-changing call of counters, lifecycle, flaky and leaky agents was acknowledged
        expect(acks.length).toBeGreaterThan(100)
        expect(new Set(acks.map((a) => a.replace(/-\d+ .*$/, "")))).toEqual(
          new Set(["counter", "lifecycle", "flaky", "leaky"])
        )
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
        expect((resumed.memory.peakUsed / resumed.memory.poolBytes) * 100).toBeGreaterThanOrEqual(
          Math.max(...roundPercents) - 0.05
        )
        expect(formatText(resumed)).not.toMatch(/peak 0(\.0)? %/)
        // the load note says what is true then: modules are validated, agents compile their variant later
        expect(notes.find((m) => m.startsWith("loaded "))).toMatch(
          /^loaded 6 modules \(validated; the restored agents compiled theirs when restored; 6 re-loads\)$/
        )
        expect(first.memory.peakUsed).toBeGreaterThanOrEqual(first.memory.usedAfterSpawn)
        expect(resumed.persistence).toMatchObject({
          resumed: true,
          saved: saved.length + 1,
          discarded: 0,
          restored: saved.length
        })
        // the first run finished its workload (checkpoint: 12 of 12 rounds), so the resumed run works a new one from round 1
        expect(resumed.persistence.startRound).toBe(1)
        expect(resumed.persistence.ackLog).toBeNull()
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
      }).pipe(Effect.provide(PlatformLive)),
    60_000
  )
})

describe("resuming a stopped workload", () => {
  it.live(
    "a run stopped in round 8 is resumed at round 8 with its seed; the ack log's states all came back",
    () =>
      Effect.gen(function* () {
        const store = sharedStore()
        const log: Array<string> = []
        // stop the first run as soon as its round 8 starts: rounds 1..7 are checkpointed, round 8 is cut short
        const stop = Deferred.makeUnsafe<void>()
        const onProgress = (e: ProgressEvent) => {
          if (e._tag === "Phase" && e.name === "round 8/12") Deferred.doneUnsafe(stop, Effect.void)
        }
        const stopped = yield* Effect.raceFirst(
          Effect.asVoid(
            runSwarm({
              agents: 40,
              seed: 9,
              persistence: store.persistence(false),
              onProgress,
              onAck: (id, v) => log.push(AckLog.ackLine(id, v)),
              onEvicted: (id, reason) => log.push(AckLog.evictedLine(id, reason))
            })
          ),
          Effect.as(Deferred.await(stop), "stopped" as const)
        )
        expect(stopped).toBe("stopped")
        expect(Option.getOrThrow(yield* store.checkpoints.load)).toMatchObject({ seed: 9, rounds: 12, completed: 7 })
        const acknowledged = AckLog.parse(log.join(""))
        expect(acknowledged.length).toBe(log.length)
        // the manual eviction of round 6 (a trapper: it has no acks) is in the log
        expect(acknowledged.flatMap((e) => (e._tag === "Evicted" ? [e.reason] : []))).toContain("Manual")

        const notes: Array<string> = []
        const resumed = yield* runSwarm({
          agents: 40,
          persistence: store.persistence(true),
          acknowledged,
          onProgress: (e) => void (e._tag === "Note" && notes.push(e.message))
        })
        expect(resumed.crashes, resumed.crashDetails.join("\n")).toBe(0)
        expect(resumed.persistence).toMatchObject({ resumed: true, startRound: 8 })
        expect(resumed.run).toMatchObject({ seed: 9, rounds: 12 })
        // rounds 8..12 only: five health cycles, the first round note is round 8's
        expect(resumed.health.cycles).toBe(5)
        expect(notes.filter((m) => /^round \d+\/12:/.test(m)).map((m) => m.split(":")[0])).toEqual(
          Array.from({ length: 5 }, (_, i) => `round ${i + 8}/12`)
        )
        expect(notes).toContain("continuing the stopped workload at round 8 of 12 (seed 9)")
        // past the pause, resume and manual eviction rounds: none of them again; the leak rounds (9..11) still come
        expect(resumed.lifecycle).toMatchObject({ paused: 0, resumed: 0 })
        expect(resumed.agents.evicted.Manual).toBe(0)
        expect(resumed.agents.evicted.MemoryPressure).toBeGreaterThan(0)
        expect(resumed.verification.mismatches).toBe(0)
        expect(Option.getOrThrow(yield* store.checkpoints.load)).toMatchObject({ seed: 9, rounds: 12, completed: 12 })

        const ackLog = resumed.persistence.ackLog!
        const calls = acknowledged.filter((e) => e._tag === "Ack").length
        expect(ackLog.calls).toBe(calls)
        expect(ackLog.lost).toBe(0)
        expect(ackLog.lostAgents).toEqual([])
        expect(ackLog.cameBack).toBeGreaterThan(calls / 2)
        expect(ackLog.cameBack + ackLog.evicted + ackLog.unchecked).toBe(calls)
        expect(formatText(resumed)).toMatch(/workload continued at round 8/)
        expect(formatText(resumed)).toMatch(
          new RegExp(
            `acknowledged +${calls} calls of ${ackLog.agents} agents in the ack log: state came back for ${ackLog.cameBack}, lost 0`
          )
        )
      }).pipe(Effect.provide(PlatformLive)),
    60_000
  )

  it("resumePosition: the round after the last completed one, up to the workload's rounds or the ones asked for", () => {
    const checkpoint = Option.some({ seed: 4, rounds: 100, completed: 7, prngState: 123 })
    expect(resumePosition(Option.none(), undefined)).toEqual(Option.none())
    expect(resumePosition(checkpoint, undefined)).toEqual(
      Option.some({ seed: 4, rounds: 100, startRound: 8, prngState: 123 })
    )
    expect(resumePosition(checkpoint, 12)).toEqual(Option.some({ seed: 4, rounds: 12, startRound: 8, prngState: 123 }))
    // nothing left of the workload (finished, or past the rounds asked for): a new one from round 1
    expect(resumePosition(Option.some({ seed: 4, rounds: 12, completed: 12, prngState: 1 }), undefined)).toEqual(
      Option.none()
    )
    expect(resumePosition(Option.some({ seed: 4, rounds: 100, completed: 20, prngState: 1 }), 12)).toEqual(
      Option.none()
    )
    // fewer than 12 rounds are never asked for: a workload needs its health and pressure phases
    expect(resumePosition(checkpoint, 3)).toEqual(Option.some({ seed: 4, rounds: 12, startRound: 8, prngState: 123 }))
  })

  it("AckLog: complete lines only; the last value per agent decides; an eviction after it is not a loss", () => {
    const entries = AckLog.parse(
      "counter-1 3\ncounter-2 5\nflaky-1 2\nleaky-1 32\nleaky-1 evicted MemoryPressure\ncounter-1 4\nlifecycle-1 10"
    )
    expect(entries).toHaveLength(6) // the last line has no newline: cut by a kill
    const agent = (id: string, expected: number, known = true) =>
      ({
        id,
        type: id.replace(/-\d+$/, ""),
        expected,
        known,
        critical: false,
        flakyAfter: 0,
        breaksHealth: false,
        spawned: true,
        paused: false
      }) as never
    const comparison = AckLog.compare(
      entries,
      [agent("counter-1", 4), agent("counter-2", 4), agent("flaky-1", 0, false)],
      new Set(["counter-1", "counter-2", "flaky-1"])
    )
    expect(comparison).toEqual({
      calls: 5,
      agents: 4,
      cameBack: 2, // counter-1 (two calls, back at 4)
      lost: 1, // counter-2: acknowledged 5, back at 4
      evicted: 1, // leaky-1
      unchecked: 1, // flaky-1: back, no read-only getter
      lostAgents: [{ agentId: "counter-2", acknowledged: 5, restored: 4 }]
    })
  })
})

describe("the CLI's options", () => {
  const main = (...args: Array<string>) =>
    spawnSync(
      process.execPath,
      ["--conditions=@agent-runtime/source", "--import", "tsx", "apps/swarm/src/main.ts", ...args],
      {
        cwd: root,
        encoding: "utf8",
        timeout: 60_000
      }
    )

  it("bad values of --platform, --resume without --db, --rounds below 12 exit with 2 and say why", () => {
    for (const [args, message] of [
      [["--platform", "wasmtime"], /--platform must be native or node/],
      [["--resume"], /--resume needs --db/],
      [["--rounds", "3"], /--rounds must be an integer in \[12, /]
    ] as const) {
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

  it.effect(
    "--db on a file another runtime holds open: one line naming the file, exit 1, nothing of it changed",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "swarm-held-"))
        try {
          const path = join(dir, "held.sqlite")
          yield* Effect.scoped(
            Effect.gen(function* () {
              // this process is the other runtime: it holds the file's lock while the CLI starts
              const { db } = yield* SqliteDatabase.open({ path })
              db.exec("CREATE TABLE mine (x); INSERT INTO mine VALUES (42)")
              const run = main("--db", path, "--quiet", "--agents", "12", "--rounds", "12")
              expect(run.status, run.stderr).toBe(1)
              expect(run.stderr).toMatch(
                /^swarm: the database .+ cannot be used: .*database is in use by another runtime/
              )
              expect(run.stderr).toContain(path)
              expect(run.stdout).toBe("")
              expect(db.prepare("SELECT x FROM mine").all()).toEqual([{ x: 42 }])
            })
          )
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      }),
    60_000
  )

  it("--help lists the new options", () => {
    const run = main("--help")
    expect(run.status).toBe(0)
    for (const option of ["--platform", "--db", "--resume", "--ack-log", "--rounds"])
      expect(run.stdout).toContain(option)
  }, 30_000)
})
