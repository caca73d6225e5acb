/**
 * WASI preview1 for agents on the Node engine, through `node:wasi`
 * (WASI `wasi_snapshot_preview1`; Node "WASI" API, `version: "preview1"`).
 *
 * A module that imports `wasi_snapshot_preview1` (and whose host imports do
 * not provide that namespace themselves) gets a fresh `WASI` instance in its
 * worker with:
 * - `args: [agentId]`, `env: {}` — nothing from the host's argv or environment,
 *   unless `WasiOptions.args` / `WasiOptions.env` give that agent its own;
 * - stdin: an empty file (never the host's stdin); stdout/stderr: two files per
 *   instance in a private temporary directory, readable from the host with
 *   `NodeEngine.output(agentId)` while the agent lives and after it ends;
 * - a preopened directory only when `NodeEngineOptions.wasi.preopens(agentId)`
 *   grants one (guest path → host path); otherwise no filesystem at all;
 * - `proc_exit(code)` never ends the worker: it unwinds the guest and the call
 *   ends with a typed outcome — code 0 is a normal return (`results: []`),
 *   any other code a `Trap` "proc_exit(code)"; the code is kept in
 *   `output(agentId).exitCode`.
 *
 * Commands (`_start`) run `main` when `_start` is invoked; reactors
 * (`_initialize`) are initialised when `_initialize` is invoked (the domain's
 * start). The instance's exported `memory` is bound to WASI right after
 * instantiation, so any export may use WASI calls.
 *
 * Node prints an `ExperimentalWarning` the first time `node:wasi` loads: the
 * worker filters exactly that warning (its `process.emitWarning`) and loads
 * `node:wasi` lazily after installing the filter; other warnings still print.
 *
 * @since 0.1.0
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Protocol, type WasiHost, type WasiSession } from "@agent-runtime/engine-kit"

/** The WASI import namespace (WASI preview1). */
export const WASI_MODULE = Protocol.WASI_MODULE // from Protocol, not WorkerEngine: keeps the host-side pool out of the worker bundle

/**
 * WASI setup sent with an instantiate request: `[programName, stdinFd, stdoutFd,
 * stderrFd, preopens: [guest, host][], args?, env: [name, value][]?]` (`args`
 * replaces `[programName]` when given).
 */
export type WasiSpec = readonly [
  name: string,
  stdin: number,
  stdout: number,
  stderr: number,
  preopens: ReadonlyArray<readonly [string, string]>,
  args?: ReadonlyArray<string> | undefined,
  env?: ReadonlyArray<readonly [string, string]> | undefined
]

/** WASI settings of a Node engine. */
export interface WasiOptions {
  /**
   * Directories an agent may see, guest path → host path (e.g.
   * `{ "/data": "/srv/agents/a1" }`). `undefined` (the default) = no
   * filesystem access at all.
   */
  readonly preopens?: ((agentId: string) => Readonly<Record<string, string>> | undefined) | undefined
  /** The guest's argv, program name first (default `[agentId]`). */
  readonly args?: ((agentId: string) => ReadonlyArray<string> | undefined) | undefined
  /** The guest's environment variables (default: none). */
  readonly env?: ((agentId: string) => Readonly<Record<string, string>> | undefined) | undefined
}

/** What a WASI agent wrote, and how it exited. */
export interface WasiOutput {
  /** Bytes written to fd 1, decoded as UTF-8. */
  readonly stdout: string
  /** Bytes written to fd 2, decoded as UTF-8. */
  readonly stderr: string
  /** The last `proc_exit` code, or `undefined` if the program never called it. */
  readonly exitCode: number | undefined
}

// -- worker side --------------------------------------------------------------

/** Thrown by the `proc_exit` import: unwinds the guest to the engine, which reports the code. */
export class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`proc_exit(${code})`)
  }
}

/** Drops Node's "WASI is an experimental feature" warning in this thread; every other warning passes. */
export const suppressWasiWarning = (): void => {
  const original = process.emitWarning
  const filtered = function (this: unknown, warning: string | Error, ...rest: Array<unknown>): void {
    const text = typeof warning === "string" ? warning : warning.message
    const first = rest[0]
    const type =
      typeof first === "string"
        ? first
        : typeof first === "object" && first !== null && "type" in first
          ? String((first as { type: unknown }).type)
          : typeof warning === "string"
            ? undefined
            : warning.name
    if (type === "ExperimentalWarning" && /\bWASI\b/.test(text)) return
    return (original as (...args: Array<unknown>) => void).call(process, warning, ...rest)
  }
  process.emitWarning = filtered as typeof process.emitWarning
}

const EMPTY = new Uint8Array(0)

/**
 * Creates the WASI instance for one agent instance (worker side). Output goes
 * straight to the instance's files; a reply carries only the exit code.
 */
export const createWasi = (spec: WasiSpec): WasiSession => {
  const { WASI } = process.getBuiltinModule("node:wasi")
  const [name, stdin, stdout, stderr, preopens, args, env] = spec
  const wasi = new WASI({
    version: "preview1",
    args: args === undefined ? [name] : [...args],
    env: Object.fromEntries(env ?? []),
    preopens: Object.fromEntries(preopens),
    stdin,
    stdout,
    stderr,
    returnOnExit: true
  })
  const imports: Record<string, unknown> = {
    ...wasi.wasiImport,
    proc_exit: (code: number) => {
      throw new ProcExit(code)
    }
  }
  let exitCode: number | null = null
  return {
    imports,
    // `initialize` binds `exports.memory`; this object has no `_initialize`, so it runs nothing
    bind: (memory) => wasi.initialize({ exports: { memory } } as unknown as object),
    exited: (code) => {
      exitCode = code
    },
    drain: () => {
      if (exitCode === null) return null
      const code = exitCode
      exitCode = null
      return [EMPTY, EMPTY, code]
    }
  }
}

/** The `proc_exit` code of a `ProcExit`, else `undefined`. */
export const exitCode = (e: unknown): number | undefined => (e instanceof ProcExit ? e.code : undefined)

// -- host side ----------------------------------------------------------------

/** The files of one WASI instance. */
export interface WasiFiles {
  readonly stdin: number
  readonly stdout: number
  readonly stderr: number
  readonly stdoutPath: string
  readonly stderrPath: string
  /** Set when the guest calls `proc_exit`. */
  exitCode: number | undefined
  closed: boolean
}

/** Host-side owner of every WASI agent's output files (one temporary directory per engine). */
export class WasiFileStore {
  private dir: string | undefined
  private stdin: number | undefined
  private count = 0
  private readonly live = new Set<WasiFiles>()

  /** Opens stdout/stderr files for a new instance (append mode; fds are process-wide, so the worker uses them directly). */
  open(): WasiFiles {
    if (this.dir === undefined) {
      this.dir = mkdtempSync(join(tmpdir(), "agent-runtime-wasi-"))
      const stdinPath = join(this.dir, "stdin")
      writeFileSync(stdinPath, new Uint8Array(0))
      this.stdin = openSync(stdinPath, "r")
    }
    const n = this.count++
    const stdoutPath = join(this.dir, `${n}.stdout`)
    const stderrPath = join(this.dir, `${n}.stderr`)
    const files: WasiFiles = {
      stdin: this.stdin!,
      stdout: openSync(stdoutPath, "a"),
      stderr: openSync(stderrPath, "a"),
      stdoutPath,
      stderrPath,
      exitCode: undefined,
      closed: false
    }
    this.live.add(files)
    return files
  }

  /** What an instance wrote so far. */
  read(files: WasiFiles): WasiOutput {
    return {
      stdout: readFileSync(files.stdoutPath, "utf8"),
      stderr: readFileSync(files.stderrPath, "utf8"),
      exitCode: files.exitCode
    }
  }

  /** Closes an instance's fds (its files stay readable until `dispose`). Idempotent. */
  close(files: WasiFiles): void {
    if (files.closed) return
    files.closed = true
    this.live.delete(files)
    closeSync(files.stdout)
    closeSync(files.stderr)
  }

  /** Closes every instance's fds and the shared stdin, and removes the directory. */
  dispose(): void {
    for (const files of [...this.live]) this.close(files)
    if (this.stdin !== undefined) closeSync(this.stdin)
    this.stdin = undefined
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true })
    this.dir = undefined
  }
}

/**
 * The engine's WASI host: a file store, each agent's latest files by agent
 * id (`output`), the setup for the worker (`preopens` from the options).
 */
export const makeHost = (options: WasiOptions | undefined) => {
  const files = new WasiFileStore()
  const outputs = new Map<string, WasiFiles>()
  const host: WasiHost<WasiSpec> = {
    open: (agentId) => {
      const f = files.open()
      outputs.set(agentId, f)
      const preopens = options?.preopens?.(agentId)
      return {
        spec: [
          agentId,
          f.stdin,
          f.stdout,
          f.stderr,
          Object.entries(preopens ?? {}),
          options?.args?.(agentId),
          Object.entries(options?.env?.(agentId) ?? {})
        ],
        handle: {
          onOutput: (output) => {
            if (output !== null && output[2] !== null) f.exitCode = output[2]
          },
          release: () => files.close(f)
        }
      }
    }
  }
  return {
    host,
    /** What an agent's latest instance wrote, and its exit code. */
    output: (agentId: string): WasiOutput | undefined => {
      const f = outputs.get(agentId)
      return f === undefined ? undefined : files.read(f)
    },
    /** Closes every file and removes the directory. */
    dispose: () => files.dispose()
  }
}
