/**
 * The child processes one suite run starts (swarm runs, multi-host hosts),
 * taken down with it: `SIGKILL` to each live child on SIGINT/SIGTERM (then
 * the signal is re-raised on this process), at process exit, and when the
 * suite ends (`close`).
 *
 * @internal
 */
import type { ChildProcess } from "node:child_process"

/** A set of children killed with the suite; `open` installs the signal and exit handlers, `close` removes them. */
export class ChildProcesses {
  private readonly children = new Set<ChildProcess>()

  /** `SIGKILL` to every child still running. */
  readonly killAll = (): void => {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.killAll()
    process.kill(process.pid, signal)
  }

  /** Installs the SIGINT/SIGTERM and exit handlers (once per suite run). */
  open(): void {
    process.once("SIGINT", this.onSignal)
    process.once("SIGTERM", this.onSignal)
    process.once("exit", this.killAll)
  }

  /** Tracks `child` until it exits. */
  add<C extends ChildProcess>(child: C): C {
    this.children.add(child)
    child.once("exit", () => this.children.delete(child))
    return child
  }

  /** Kills every child, waits for their exits, and removes the handlers. */
  async close(): Promise<void> {
    this.killAll()
    await Promise.all([...this.children].map(waitExit))
    this.children.clear()
    process.off("SIGINT", this.onSignal)
    process.off("SIGTERM", this.onSignal)
    process.off("exit", this.killAll)
  }
}

/** Resolves when `child` has exited (at once when it already has). */
export const waitExit = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))
