// Runs a long-lived child (a dev server, workerd) in its own process group and takes the whole group
// down with this process: on SIGINT/SIGTERM/SIGHUP it sends the same signal to the group (SIGKILL after
// `graceMs`), and when this process's parent goes away (it is re-parented) it does the same, so killing
// the PID of `pnpm … dev` / `pnpm … serve` frees the port even when a grandchild (Vite's esbuild,
// workerd's native binary) would outlive its parent. pnpm forwards SIGINT/SIGTERM to its script.
//
// CLI:    node tooling/scripts/process-group.mjs <command> [args…]     (exits with the child's code)
// Module: import { runInGroup } from ".../process-group.mjs"; runInGroup(command, args, spawnOptions)
import { spawn } from "node:child_process"
import { pathToFileURL } from "node:url"

const SIGNALS = /** @type {const} */ (["SIGINT", "SIGTERM", "SIGHUP"])

/**
 * Spawns `command args` in a new process group (stdio inherited unless `options.stdio` says otherwise)
 * and wires signals, parent death and exit to take the group down. Exits this process with the child's
 * exit code (128 + signal number when it was killed). Returns the child.
 *
 * @param {string} command
 * @param {ReadonlyArray<string>} args
 * @param {import("node:child_process").SpawnOptions & { graceMs?: number }} [options]
 */
export const runInGroup = (command, args, options = {}) => {
  const { graceMs = 1500, ...spawnOptions } = options
  const child = spawn(command, [...args], { stdio: "inherit", ...spawnOptions, detached: true })
  let stopping = false
  const killGroup = (signal) => {
    if (child.pid === undefined) return
    try {
      process.kill(-child.pid, signal)
    } catch {
      // the group is gone already
    }
  }
  const stop = (signal) => {
    if (stopping) return
    stopping = true
    killGroup(signal)
    setTimeout(() => killGroup("SIGKILL"), graceMs).unref()
  }
  for (const signal of SIGNALS) process.on(signal, () => stop(signal))
  // Our parent died without signalling us (e.g. `kill -9` of pnpm): we were re-parented.
  const parent = process.ppid
  const watch = setInterval(() => {
    if (process.ppid !== parent) stop("SIGTERM")
  }, 200)
  watch.unref()
  // Whatever ends this process ends the group too.
  process.on("exit", () => killGroup("SIGKILL"))
  child.on("error", (e) => {
    console.error(`${command}: ${e.message}`)
    process.exit(127)
  })
  child.on("exit", (code, signal) => {
    clearInterval(watch)
    // the leader is gone; take down anything it left in its group
    killGroup("SIGTERM")
    process.exit(code ?? (signal === null ? 1 : 128 + (signalNumbers[signal] ?? 15)))
  })
  return child
}

const signalNumbers = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [command, ...args] = process.argv.slice(2)
  if (command === undefined) {
    console.error("usage: node process-group.mjs <command> [args…]")
    process.exit(2)
  }
  runInGroup(command, args)
}
