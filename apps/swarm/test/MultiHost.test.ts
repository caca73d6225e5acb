/**
 * `pnpm start --hosts 3 --json` end to end, as `./dev start --hosts 3 --json`
 * runs it (small: 24 agents of the swarm's plan, every type): a real
 * nats-server -js and three real host processes, one SIGKILLed mid-run. The
 * report must show the swarm's mix (its per-type counts from `Plan.planCounts`)
 * doing its tasks with every result right, the killed host's agents moved to
 * the survivors with no acknowledged call or event lost, and the run must
 * leave no child behind. SIGTERM to the CLI takes its
 * nats-server and hosts down.
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import type { MultiHostReport } from "../src/MultiHost.js"
import { agentTypes, planCounts } from "../src/Plan.js"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const live = new Set<ChildProcess>()
afterAll(() => {
  for (const child of live) child.kill("SIGTERM")
})

const cli = (args: ReadonlyArray<string>) => {
  const child = spawn(
    process.execPath,
    ["--conditions=@agent-runtime/source", "--import", "tsx", "apps/swarm/src/main.ts", ...args],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  live.add(child)
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8_000)))
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) =>
      child.once("exit", (code, signal) => {
        live.delete(child)
        resolve({ code, signal, stdout, stderr })
      })
  )
  return { child, done, stderr: () => stderr }
}

/** Pids of processes whose command line contains `needle` (from `ps`). */
const pidsWith = (needle: string): Array<number> =>
  spawnSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter((line) => line.includes(needle))
    .map((line) => Number(line.trim().split(/\s+/)[0]))

describe("swarm --hosts", () => {
  it("3 hosts, one SIGKILLed mid-run: its agents move, no acknowledged call or event lost; no child left", async () => {
    const run = cli(["--hosts", "3", "--agents", "24", "--seed", "4", "--json"])
    const { code, stdout, stderr } = await run.done
    expect(code, stderr).toBe(0)
    const report = JSON.parse(stdout) as MultiHostReport
    expect(report).toMatchObject({ mode: "hosts", hosts: 3, agents: 24, rounds: 12, killedHost: "host-b" })
    expect(report.agentsOnKilledHost).toBeGreaterThan(0)
    expect(report.agentsMoved).toBeGreaterThanOrEqual(report.agentsOnKilledHost)
    // the swarm's mix: every type of the plan ran, spread over the hosts, and the state-keeping ones acknowledged calls
    const counts = planCounts(24)
    for (const type of agentTypes) {
      expect(report.byType[type].agents, type).toBe(counts[type])
      expect(report.byType[type].acknowledgedCallsLost, type).toBe(0)
      expect(report.byType[type].moved, type).toBe(report.byType[type].onKilledHost)
    }
    for (const type of ["counter", "lifecycle", "leaky", "flaky"] as const) {
      expect(report.byType[type].acknowledgedCalls, type).toBeGreaterThan(0)
    }
    expect(agentTypes.reduce((n, t) => n + report.byType[t].onKilledHost, 0)).toBe(report.agentsOnKilledHost)
    // 12 rounds, about 80 % of the agents per round, at least one state change per counter/lifecycle/leaky/flaky task
    expect(report.acknowledgedCalls).toBeGreaterThan(100)
    expect(report.acknowledgedCallsLost).toBe(0)
    expect(report.acknowledgedCallsUnchecked).toBe(0)
    expect(report.callsFailed).toBe(0)
    // text results (word counts, CRC-32, top word), trapper results and traps, every state, checked against JavaScript
    expect(report.verification.checked).toBeGreaterThan(200)
    expect(report.verification.mismatches).toBe(0)
    expect(report.crashes, report.crashDetails.join("\n")).toBe(0)
    expect(report.acknowledgedEvents).toBeGreaterThan(24) // the spawns at least
    expect(report.acknowledgedEventsLost).toBe(0)
    expect(report.duplicates).toBe(0)
    // a moved agent comes back only once the dead host's lease could expire (renewed every TTL / 3)
    expect(report.recoverMs).toBeGreaterThanOrEqual(report.leaseTtlMs / 2)
    expect(report.ok).toBe(true)
    // neither a host (its argument names the run's nats-server) nor the nats-server itself is left
    const port = new URL(report.natsUrl).port
    expect(pidsWith(`127.0.0.1:${port}`)).toEqual([])
    expect(pidsWith(`-p ${port} `)).toEqual([])
  }, 300_000)

  it("SIGTERM mid-run takes nats-server and the hosts down", async () => {
    const run = cli(["--hosts", "2", "--agents", "12", "--rounds", "100000"])
    const deadline = Date.now() + 120_000
    while (!run.stderr().includes("round 1/") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(run.stderr()).toContain("round 1/")
    const store = /nats-server -js on nats:\/\/127\.0\.0\.1:(\d+)/.exec(run.stderr())?.[1]
    expect(store).toBeDefined()
    run.child.kill("SIGTERM")
    const { code } = await run.done
    expect(code).toBe(130)
    // neither the hosts (their config names the run's port) nor the nats-server on that port survive
    await new Promise((r) => setTimeout(r, 500))
    expect(pidsWith(`127.0.0.1:${store}`)).toEqual([])
    expect(pidsWith(`-p ${store} `)).toEqual([])
  }, 300_000)
})
