/**
 * Host processes for the multi-host test: starts `support/host.ts` as a
 * child (`node --conditions=@agent-runtime/source --import tsx`), speaks its
 * line protocol (requests on stdin, replies and published event ids on
 * stdout), and kills every child still running when the test ends, when
 * the test process exits, or on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import type { HostConfig } from "./host.js"

/** A reply of the host: a value, or a typed error (`_tag`, `owner` for `AgentAlreadyExists`). */
export type Reply =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: { readonly _tag: string; readonly message: string; readonly owner?: string } }

/** One running host process. */
export interface HostProcess {
  readonly hostId: string
  readonly child: ChildProcess
  /** Sends a request; resolves with the host's reply, or with `HostGone` when it exits first. */
  readonly request: (op: string, params?: Record<string, unknown>) => Promise<Reply>
  /** Ids of the events this host's runtime published, as it saw them come back from JetStream (acknowledged). */
  readonly events: Array<string>
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>
}

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const live = new Set<ChildProcess>()
let hooked = false
const hook = () => {
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

/** Starts a host; resolves once it has loaded its module and listens (fails if it exits first or takes over 100 s). */
export const startHost = (config: HostConfig): Promise<HostProcess> => {
  hook()
  const child = spawn(
    process.execPath,
    ["--conditions=@agent-runtime/source", "--import", "tsx", "test/support/host.ts"],
    {
      cwd: packageDir,
      env: { ...process.env, HOST_CONFIG: JSON.stringify(config) },
      stdio: ["pipe", "pipe", "pipe"]
    }
  )
  live.add(child)
  let stderr = ""
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_000)))
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      live.delete(child)
      for (const [, settle] of pending)
        settle({ ok: false, error: { _tag: "HostGone", message: `host ${config.hostId} exited` } })
      pending.clear()
      resolve()
    })
  )
  const pending = new Map<number, (reply: Reply) => void>()
  const events: Array<string> = []
  let nextId = 0
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`host ${config.hostId} did not start within 100 s:\n${stderr}`)),
      100_000
    )
    void exited.then(() => reject(new Error(`host ${config.hostId} exited at start:\n${stderr}`)))
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      let msg: { id?: number; ready?: boolean; event?: string } & Reply
      try {
        msg = JSON.parse(line)
      } catch {
        return // not ours (a log line)
      }
      if (msg.ready === true) {
        clearTimeout(timer)
        resolve({
          hostId: config.hostId,
          child,
          events,
          exited,
          request: (op, params = {}) =>
            new Promise<Reply>((settle) => {
              if (child.exitCode !== null || child.signalCode !== null) {
                return settle({ ok: false, error: { _tag: "HostGone", message: `host ${config.hostId} exited` } })
              }
              const id = ++nextId
              pending.set(id, settle)
              child.stdin!.write(JSON.stringify({ id, op, ...params }) + "\n")
            })
        })
      } else if (typeof msg.event === "string") {
        events.push(msg.event)
      } else if (typeof msg.id === "number") {
        pending.get(msg.id)?.(msg)
        pending.delete(msg.id)
      }
    })
  })
}

/** Stops a host: SIGTERM (it releases its leases), SIGKILL after `graceMs`. */
export const stopHost = async (host: HostProcess, graceMs = 5_000): Promise<void> => {
  if (host.child.exitCode !== null || host.child.signalCode !== null) return
  host.child.kill("SIGTERM")
  const timer = setTimeout(() => host.child.kill("SIGKILL"), graceMs)
  await host.exited
  clearTimeout(timer)
}
