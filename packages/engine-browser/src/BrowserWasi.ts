/**
 * WASI preview1 for agents on the browser engine, through the maintained
 * pure-JavaScript shim `@bjorn3/browser_wasi_shim` (WASI
 * `wasi_snapshot_preview1`).
 *
 * A module that imports `wasi_snapshot_preview1` (and whose host imports do
 * not provide that namespace themselves) gets a fresh shim instance in its
 * executor (its worker, or the page in in-page mode) with:
 * - `args: [agentId, ...extra]`, `env: []` unless `WasiOptions` grants more;
 * - stdin: empty; stdout/stderr: captured per instance and sent back to the
 *   page with each response, readable with `BrowserEngine.output(agentId)`
 *   (also after the agent ended);
 * - a preopened in-memory directory `/` only with the files
 *   `WasiOptions.files(agentId)` grants (guest path → bytes); writes stay in
 *   that instance's memory; without it, no filesystem at all;
 * - `proc_exit(code)` unwinds the guest (the shim throws `WASIProcExit`) and
 *   the call ends with a typed outcome — 0 is a normal return (`results: []`),
 *   any other code a `Trap` "proc_exit(code)"; the code is kept in
 *   `output(agentId).exitCode`.
 *
 * The instance's exported `memory` is bound to the shim right after
 * instantiation, so any export may make WASI calls; `_start` / `_initialize`
 * are called by the runtime like any export. Clocks are the browser's
 * (`performance.now`, `Date`); `random_get` uses `crypto.getRandomValues`.
 *
 * @since 0.1.0
 */
import {
  ConsoleStdout,
  Directory,
  type Fd,
  File,
  type Inode,
  OpenFile,
  PreopenDirectory,
  WASI,
  WASIProcExit
} from "@bjorn3/browser_wasi_shim"
import { type ExecutorPlatform, Protocol, type WasiHost, type WasiSession } from "@agent-runtime/engine-kit"

/** The WASI import namespace (WASI preview1). */
export const WASI_MODULE = Protocol.WASI_MODULE // from Protocol, not WorkerEngine: keeps the host-side pool out of the worker bundle

/** WASI setup sent with an instantiate request: `[args, env, files: [guestPath, bytes][]]` (an in-memory preopened `/`). */
export type WasiSpec = readonly [
  args: ReadonlyArray<string>,
  env: ReadonlyArray<string>,
  files: ReadonlyArray<readonly [string, Uint8Array]>
]

type OutputWire = Protocol.OutputWire

/** WASI settings of a browser engine. */
export interface WasiOptions {
  /** Extra program arguments after the agent id (argv[0]). */
  readonly args?: ((agentId: string) => ReadonlyArray<string> | undefined) | undefined
  /** Environment, as `KEY=value` strings (default none). */
  readonly env?: ((agentId: string) => ReadonlyArray<string> | undefined) | undefined
  /** Files of an in-memory directory preopened as `/` (guest path → bytes); `undefined` = no filesystem. */
  readonly files?: ((agentId: string) => Readonly<Record<string, Uint8Array>> | undefined) | undefined
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

/** Thrown out of a guest by `proc_exit` (the shim's exception), re-exported so executors can map it. */
export { WASIProcExit as ProcExit }

const concat = (chunks: Array<Uint8Array>): Uint8Array => {
  let n = 0
  for (const c of chunks) n += c.byteLength
  const out = new Uint8Array(n)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

/** Builds a directory tree from `path → bytes` (paths relative to `/`). */
const tree = (files: ReadonlyArray<readonly [string, Uint8Array]>): Map<string, Inode> => {
  const root = new Map<string, Inode>()
  for (const [path, bytes] of files) {
    const parts = path.split("/").filter((p) => p !== "" && p !== ".")
    let dir = root
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!
      let next = dir.get(name)
      if (!(next instanceof Directory)) {
        next = new Directory(new Map())
        dir.set(name, next)
      }
      dir = (next as Directory).contents
    }
    const leaf = parts[parts.length - 1]
    if (leaf !== undefined) dir.set(leaf, new File(bytes.slice()))
  }
  return root
}

/** Creates one instance's WASI from its spec (in the executor). */
export const createWasi = (spec: WasiSpec): WasiSession => {
  const [args, env, files] = spec
  let stdout: Array<Uint8Array> = []
  let stderr: Array<Uint8Array> = []
  let exitCode: number | null = null
  let dirty = false
  const fds: Array<Fd> = [
    new OpenFile(new File(new Uint8Array(0), { readonly: true })),
    new ConsoleStdout((bytes) => {
      stdout.push(bytes.slice())
      dirty = true
    }),
    new ConsoleStdout((bytes) => {
      stderr.push(bytes.slice())
      dirty = true
    })
  ]
  if (files.length > 0) fds.push(new PreopenDirectory("/", tree(files)))
  const wasi = new WASI([...args], [...env], fds)
  return {
    imports: wasi.wasiImport,
    bind: (memory) => {
      wasi.inst = { exports: { memory } }
    },
    exited: (code) => {
      exitCode = code
      dirty = true
    },
    drain: () => {
      if (!dirty) return null
      const out: OutputWire = [concat(stdout), concat(stderr), exitCode]
      stdout = []
      stderr = []
      exitCode = null
      dirty = false
      return out
    }
  }
}

// -- page side ------------------------------------------------------------------

/** The page's record of every WASI agent's output (latest instance per agent id). */
export class WasiOutputStore {
  private readonly outputs = new Map<
    string,
    { stdout: Array<Uint8Array>; stderr: Array<Uint8Array>; exitCode: number | undefined }
  >()
  private readonly decoder = new TextDecoder()

  /** Starts a fresh record for an agent (a new instance). */
  open(agentId: string): void {
    this.outputs.set(agentId, { stdout: [], stderr: [], exitCode: undefined })
  }

  /** Appends what a response carried. */
  append(agentId: string, output: OutputWire): void {
    if (output === null) return
    const o = this.outputs.get(agentId)
    if (o === undefined) return
    if (output[0].byteLength > 0) o.stdout.push(output[0])
    if (output[1].byteLength > 0) o.stderr.push(output[1])
    if (output[2] !== null) o.exitCode = output[2]
  }

  /** The output of an agent's latest instance, or `undefined`. */
  read(agentId: string): WasiOutput | undefined {
    const o = this.outputs.get(agentId)
    if (o === undefined) return undefined
    return {
      stdout: this.decoder.decode(concat(o.stdout)),
      stderr: this.decoder.decode(concat(o.stderr)),
      exitCode: o.exitCode
    }
  }
}

/** What the executor (a worker, or the page in in-page mode) needs: the shim, its exit exception. */
export const executorPlatform: ExecutorPlatform<WasiSpec> = {
  createWasi,
  exitCode: (e) => (e instanceof WASIProcExit ? e.code : undefined),
  notAModule: "not a module compiled by the browser engine"
}

/** The engine's WASI host: each agent's output (`output`), the setup for the executor from `options`. */
export const makeHost = (options: WasiOptions | undefined) => {
  const outputs = new WasiOutputStore()
  const host: WasiHost<WasiSpec> = {
    open: (agentId) => {
      outputs.open(agentId)
      const files = options?.files?.(agentId)
      return {
        spec: [
          [agentId, ...(options?.args?.(agentId) ?? [])],
          [...(options?.env?.(agentId) ?? [])],
          files === undefined ? [] : Object.entries(files)
        ],
        handle: { onOutput: (output) => outputs.append(agentId, output), release: () => undefined }
      }
    }
  }
  return { host, output: (agentId: string): WasiOutput | undefined => outputs.read(agentId) }
}
