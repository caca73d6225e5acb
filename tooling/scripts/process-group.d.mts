// Types of process-group.mjs (a plain ESM script, run by Node without a build).
import type { ChildProcess, SpawnOptions } from "node:child_process"

/**
 * Spawns `command args` in its own process group and takes the group down with this process
 * (SIGINT/SIGTERM/SIGHUP forwarded to the group, SIGKILL after `graceMs` (default 1500 ms), also when
 * this process's parent dies); exits this process with the child's exit code.
 */
export declare const runInGroup: (
  command: string,
  args: ReadonlyArray<string>,
  options?: SpawnOptions & { readonly graceMs?: number }
) => ChildProcess
