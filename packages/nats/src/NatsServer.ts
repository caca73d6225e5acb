/**
 * `@agent-runtime/nats/server`: a local `nats-server -js` for tests, the
 * dev multi-host mode (`./dev start --hosts 3`) and examples — never a mock.
 * Node only (`node:child_process`); not needed to talk to an existing server.
 *
 * `startNatsServer` picks a free port on 127.0.0.1, starts the binary with
 * JetStream and a store directory (a temporary one unless given), resolves
 * once the port accepts connections (20 s at most, else it fails with the
 * server's output), and kills every server it started when the process
 * exits or gets SIGINT/SIGTERM (then exits 130 unless other signal
 * listeners are installed, which then own the exit).
 *
 * The binary: `$NATS_SERVER`, else `nats-server` on the PATH, else Debian's
 * `/usr/sbin/nats-server` (not on a non-root PATH). Missing → an `Error`
 * saying how to install it (`apt-get install -y nats-server`; `./dev`
 * installs it).
 *
 * @since 0.1.0
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** A started server. */
export interface RunningNatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string
  readonly port: number
  /** The JetStream store directory. */
  readonly storeDir: string
  /** The server's process id while it runs (`undefined` when stopped). */
  readonly pid: () => number | undefined
  /** Stops the server (SIGTERM, then SIGKILL after 5 s); the store stays for `start`. */
  readonly stop: () => Promise<void>
  /** Starts it again on the same port and store (after `stop`). */
  readonly start: () => Promise<void>
  /** Stops it and removes the store (also a store given in the options). */
  readonly dispose: () => Promise<void>
}

/** Options of `startNatsServer`. */
export interface NatsServerOptions {
  /** The binary; default: `natsServerBinary()`. */
  readonly binary?: string | undefined
  /** The JetStream store directory; default: a new temporary directory. */
  readonly storeDir?: string | undefined
  /** Extra command-line arguments. */
  readonly args?: ReadonlyArray<string> | undefined
}

/** `$NATS_SERVER`, else `nats-server` on the PATH, else `/usr/sbin/nats-server`; `undefined` when none runs. */
export const natsServerBinary = (): string | undefined => {
  for (const candidate of [process.env["NATS_SERVER"], "nats-server", "/usr/sbin/nats-server"]) {
    if (candidate === undefined || candidate === "") continue
    const probe = spawnSync(candidate, ["--version"], { encoding: "utf8" })
    if (probe.error === undefined && probe.status === 0) return candidate
  }
  return undefined
}

/** The binary, or an `Error` with an install hint when no `nats-server` runs here. */
export const requireNatsServer = (): string => {
  const binary = natsServerBinary()
  if (binary === undefined) {
    throw new Error(
      "nats-server is required but neither $NATS_SERVER, `nats-server` on the PATH nor /usr/sbin/nats-server runs. " +
        "Install it: `apt-get install -y nats-server` (Debian), or run `./dev test`, which installs it; NATS_SERVER=/path overrides the binary."
    )
  }
  return binary
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
      if (process.listenerCount(signal) === 0) process.exit(130)
    })
  }
}

/** Starts `nats-server -js` on a free port of 127.0.0.1; resolves once it accepts connections. */
export const startNatsServer = async (options: NatsServerOptions = {}): Promise<RunningNatsServer> => {
  const binary = options.binary ?? requireNatsServer()
  hookSignals()
  const port = await freePort()
  const storeDir = options.storeDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "agent-runtime-nats-"))
  let child: ChildProcess | undefined
  let output = ""

  const start = async () => {
    output = ""
    const proc = spawn(
      binary,
      ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir, ...(options.args ?? [])],
      {
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    child = proc
    live.add(proc)
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-8_000))
    proc.stdout?.on("data", keep)
    proc.stderr?.on("data", keep)
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
    pid: () => child?.pid,
    stop,
    start,
    dispose: async () => {
      await stop()
      fs.rmSync(storeDir, { recursive: true, force: true })
    }
  }
}
