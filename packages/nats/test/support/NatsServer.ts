/**
 * A real `nats-server -js` for the tests: started on a free port with a
 * temporary store directory, waited for until it accepts connections, and
 * killed (with its store removed) at the end — also when the test process
 * gets SIGINT/SIGTERM. No mock: when `nats-server` is not installed the tests
 * fail with a message saying how to install it (CI installs it through
 * `.ci/run` → `./dev`).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

export interface RunningNatsServer {
  readonly url: string
  readonly port: number
  readonly storeDir: string
  /** Stops the server (SIGTERM, then SIGKILL after 5 s); the store stays for `start`. */
  readonly stop: () => Promise<void>
  /** Starts it again on the same port and store (after `stop`). */
  readonly start: () => Promise<void>
  /** Stops it and removes the store. */
  readonly dispose: () => Promise<void>
}

/** `$NATS_SERVER`, else `nats-server` on the PATH, else Debian's `/usr/sbin/nats-server` (not on a non-root PATH). */
const BINARY =
  process.env["NATS_SERVER"] ??
  (spawnSync("nats-server", ["--version"]).error === undefined || !fs.existsSync("/usr/sbin/nats-server") ? "nats-server" : "/usr/sbin/nats-server")

/** Fails with an install hint when `nats-server` cannot be run. */
export const requireNatsServer = (): void => {
  const probe = spawnSync(BINARY, ["--version"], { encoding: "utf8" })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `nats-server is required by the @agent-runtime/nats tests but \`${BINARY} --version\` failed (${probe.error?.message ?? probe.stderr}). ` +
        "Install it: `apt-get install -y nats-server` (Debian), or run `./dev test`, which installs it; NATS_SERVER=/path overrides the binary."
    )
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const live = new Set<ChildProcess>()
let hooked = false
const hookSignals = () => {
  if (hooked) return
  hooked = true
  const killAll = () => {
    for (const child of live) child.kill("SIGKILL")
  }
  process.once("exit", killAll)
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(130)
    })
  }
}

/** Starts `nats-server -js` on a free port (127.0.0.1) with a temporary store; resolves once it accepts connections. */
export const startNatsServer = async (extraArgs: ReadonlyArray<string> = []): Promise<RunningNatsServer> => {
  requireNatsServer()
  hookSignals()
  const port = await freePort()
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), "agent-runtime-nats-"))
  let child: ChildProcess | undefined
  let output = ""

  const start = async () => {
    output = ""
    const proc = spawn(BINARY, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir, ...extraArgs], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    child = proc
    live.add(proc)
    proc.stdout?.on("data", (d: Buffer) => (output += d.toString()))
    proc.stderr?.on("data", (d: Buffer) => (output += d.toString()))
    let exited = false
    proc.once("exit", () => {
      exited = true
      live.delete(proc)
    })
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      if (exited) throw new Error(`nats-server exited at start:\n${output}`)
      if (await canConnect(port)) return
      await new Promise((r) => setTimeout(r, 50))
    }
    proc.kill("SIGKILL")
    throw new Error(`nats-server did not accept connections on port ${port} within 20 s:\n${output}`)
  }

  const stop = async () => {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((r) => proc.once("exit", () => r()))
    proc.kill("SIGTERM")
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000)
    await exited
    clearTimeout(timer)
  }

  await start()
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop,
    start,
    dispose: async () => {
      await stop()
      fs.rmSync(storeDir, { recursive: true, force: true })
    }
  }
}

let unique = 0
/** A name no other test of this process uses (for buckets and streams). */
export const uniqueName = (prefix: string): string => `${prefix}-${process.pid}-${++unique}`
