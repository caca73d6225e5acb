/**
 * Runs real workerd (the npm `workerd` package's binary) for a built Worker
 * on 127.0.0.1 and a free port, for Node tests. `build(which)` runs
 * `scripts/build.ts` first (fast: ~2 s).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createRequire } from "node:module"
import { createServer } from "node:net"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

export const app = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

/** Builds `dist/<which>` (the bundle via `agent-runtime bundle`, esbuild, config.capnp). */
export const build = (which: "worker" | "conformance"): void => {
  execFileSync(
    process.execPath,
    ["--conditions=@agent-runtime/source", "--import", "tsx", join(app, "scripts/build.ts"), which],
    {
      cwd: app,
      stdio: "pipe"
    }
  )
}

/** The workerd binary of the npm package. */
export const workerdBinary = (): string => {
  const require = createRequire(join(app, "package.json"))
  const pkg = dirname(require.resolve("workerd/package.json"))
  return join(pkg, "bin", "workerd")
}

const freePort = () =>
  new Promise<number>((resolvePort, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() =>
        typeof address === "object" && address !== null ? resolvePort(address.port) : reject(new Error("no port"))
      )
    })
  })

/** A running workerd: its base URL, its output so far, and `stop`. */
export interface Workerd {
  readonly url: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

/**
 * Starts workerd on `dist/<which>/config.capnp` (or `<dir>/config.capnp` for
 * a directory path) and waits until `GET readyPath` (default `/`) answers with a status `ready` accepts (default: below 500).
 */
export const startWorkerd = async (
  which: "worker" | "conformance" | (string & {}),
  readyPath = "/",
  ready: (status: number) => boolean = (status) => status < 500
): Promise<Workerd> => {
  const port = await freePort()
  const dir = which === "worker" || which === "conformance" ? join(app, "dist", which) : which
  const config = join(dir, "config.capnp")
  const child: ChildProcess = spawn(workerdBinary(), ["serve", config, "--socket-addr", `http=127.0.0.1:${port}`], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.on("data", (d) => (output += String(d)))
  child.stderr?.on("data", (d) => (output += String(d)))
  const url = `http://127.0.0.1:${port}`
  const stop = () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null) return done()
      child.once("exit", () => done())
      child.kill("SIGTERM")
      setTimeout(() => child.kill("SIGKILL"), 2000).unref()
    })
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}:\n${output}`)
    try {
      const r = await fetch(url + readyPath, { signal: AbortSignal.timeout(1000) })
      if (ready(r.status)) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`workerd did not answer within 20 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url, output: () => output, stop }
}
