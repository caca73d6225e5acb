/**
 * The server as a child process (`node --import tsx src/main.ts`), as an
 * operator runs it: resolves once it printed its `listening` line; killed
 * (SIGKILL) at the end of the test process and on SIGINT/SIGTERM if still
 * running.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

export interface ServerProcess {
  readonly url: string
  readonly hostId: string
  readonly child: ChildProcess
  /** Everything written on stdout / stderr so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the exit code (or the signal) once the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const live = new Set<ChildProcess>()
let hooked = false
const hook = () => {
  if (hooked) return
  hooked = true
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL")
  })
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      for (const child of live) child.kill("SIGKILL")
      process.exit(130)
    })
  }
}

const entry = fileURLToPath(new URL("../../src/main.ts", import.meta.url))

/** Starts `agent-runtime-server` with `args` (add `--port 0`); rejects if it exits or stays silent for `startTimeoutMs`. */
export const startServerProcess = (args: ReadonlyArray<string>, startTimeoutMs = 90_000): Promise<ServerProcess> => {
  hook()
  const child = spawn(process.execPath, ["--conditions=@agent-runtime/source", "--import", "tsx", entry, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    cwd: fileURLToPath(new URL("../..", import.meta.url))
  })
  live.add(child)
  let out = ""
  let err = ""
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      live.delete(child)
      resolve({ code, signal })
    })
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`server did not start within ${startTimeoutMs} ms:\n${err}`))
    }, startTimeoutMs)
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`server exited at start (${code ?? signal}):\n${err}`))
    })
    child.stdout!.on("data", (d: Buffer) => {
      const before = out
      out += d.toString()
      if (before.includes("\n")) return
      const line = out.split("\n")[0]!
      if (!out.includes("\n")) return
      clearTimeout(timer)
      const started = JSON.parse(line) as { url: string; hostId: string }
      resolve({ url: started.url, hostId: started.hostId, child, stdout: () => out, stderr: () => err, exited })
    })
  })
}
