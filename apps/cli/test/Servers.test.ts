/**
 * The documented server commands stop with the PID you started: each is
 * started as the README says (`pnpm --filter … dev` / `serve`; `serve` on a
 * one-file Worker of the test's own), the test
 * waits for its port, kills the `pnpm` PID with SIGTERM, and expects the
 * port to be free within 2 s and no process of the tree left
 * (`tooling/scripts/process-group.mjs`, issue 15 item 9).
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const started: Array<ChildProcess> = []
const cleanup: Array<string> = []
afterAll(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true })
  for (const c of started) {
    if (c.pid !== undefined && c.exitCode === null) {
      try {
        process.kill(-c.pid, "SIGKILL")
      } catch {
        // gone
      }
    }
  }
})

/** `true` when something accepts TCP connections on 127.0.0.1:`port`. */
const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => (socket.destroy(), resolve(true)))
    socket.once("error", () => resolve(false))
  })

const waitFor = async (check: () => Promise<boolean>, ms: number): Promise<boolean> => {
  const deadline = performance.now() + ms
  while (performance.now() < deadline) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return check()
}

/** Descendants of `pid` (from `ps`), so a survivor is named in the failure. */
const descendants = (pid: number): Array<string> => {
  const ps = spawnSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" }).stdout
  const rows = ps
    .split("\n")
    .map((l) => l.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m) => m !== null)
  const found: Array<string> = []
  const walk = (p: number) => {
    for (const m of rows) {
      if (Number(m[2]) === p) {
        found.push(`${m[1]} ${m[3]}`)
        walk(Number(m[1]))
      }
    }
  }
  walk(pid)
  return found
}

const killParentFreesPort = async (args: Array<string>, port: number) => {
  expect(await listening(port), `port ${port} is busy before the test`).toBe(false)
  // detached: its own group, so afterAll can clean up whatever a failing run leaves
  const child = spawn("pnpm", args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true })
  started.push(child)
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const up = await waitFor(() => listening(port), 90_000)
  expect(up, `never listened on ${port}:\n${output}`).toBe(true)
  const tree = descendants(child.pid!)
  process.kill(child.pid!, "SIGTERM") // the PID the user started, nothing else
  const freed = await waitFor(async () => !(await listening(port)), 2000)
  expect(freed, `port ${port} still in use 2 s after SIGTERM to pnpm; tree was:\n${tree.join("\n")}`).toBe(true)
  const left = await waitFor(async () => descendants(child.pid!).length === 0, 2000)
  expect(left, `left running: ${descendants(child.pid!).join("; ")}`).toBe(true)
}

describe("server commands stop with their parent", () => {
  it("pnpm --filter @agent-runtime/browser-demo dev (Vite)", async () => {
    await killParentFreesPort(
      ["--filter", "@agent-runtime/browser-demo", "dev", "--port", "15173", "--strictPort", "--host", "127.0.0.1"],
      15173
    )
  }, 120_000)

  it("pnpm --filter @agent-runtime/server start (drains, then exits)", async () => {
    await killParentFreesPort(
      [
        "--filter",
        "@agent-runtime/server",
        "start",
        "--",
        "--port",
        "18080",
        "--host",
        "127.0.0.1",
        "--trust",
        "test-only"
      ],
      18080
    )
  }, 120_000)

  it("pnpm --filter @agent-runtime/edge-worker serve (workerd)", async () => {
    // The same serve script and workerd binary, on a one-file Worker of its own: the edge-worker's
    // tests rebuild dist/worker while they run, which this test must not race.
    const dir = mkdtempSync(join(tmpdir(), "agent-runtime-serve-"))
    cleanup.push(dir)
    writeFileSync(join(dir, "worker.js"), `export default { fetch: () => new Response("ok") }\n`)
    writeFileSync(
      join(dir, "config.capnp"),
      [
        `using Workerd = import "/workerd/workerd.capnp";`,
        `const config :Workerd.Config = (`,
        `  services = [ (name = "main", worker = .worker) ],`,
        `  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "main") ],`,
        `);`,
        `const worker :Workerd.Worker = (`,
        `  modules = [ (name = "worker.js", esModule = embed "worker.js") ],`,
        `  compatibilityDate = "2026-01-01",`,
        `);`,
        ``
      ].join("\n")
    )
    await killParentFreesPort(["--filter", "@agent-runtime/edge-worker", "serve", "18788", dir], 18788)
  }, 120_000)
})
