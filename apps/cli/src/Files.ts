/**
 * What every command shares: where output goes (`Io`), the exit codes, the
 * one-line failure (`Failure`), and reading modules, keys and trust files
 * relative to the caller's directory. Errors are one line, never a stack.
 *
 * @since 0.1.0
 */
import { TrustStore } from "@agent-runtime/signing"
import { type ModuleInfo, readModule } from "@agent-runtime/wasm-binary"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { constants } from "node:fs"
import { access, readFile, writeFile } from "node:fs/promises"
import { basename, resolve } from "node:path"
import type { ProgressStream } from "./Progress.js"

/** Where a command writes: one call per line of output (no trailing newline). */
export interface Io {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
  /** Directory relative paths resolve against (default: `process.cwd()`). */
  readonly cwd?: string | undefined
  /**
   * Where progress of long work goes (`bundle`): a bar on a TTY, plain lines
   * otherwise (`Progress.ts`); none when absent (the `bin` passes `process.stderr`).
   */
  readonly progress?: ProgressStream | undefined
}

/**
 * Exit codes of `main`: 0 success; 1 a signature does not verify (`verify`,
 * `inspect --trust`, `bundle`, `run --trust`); 2 bad usage or bad input; 3–7
 * the typed failures of `run` (see `Run.ts`); 70 an internal error (a bug).
 */
export const ExitCode = {
  ok: 0,
  invalid: 1,
  usage: 2,
  call: 3,
  trap: 4,
  fuel: 5,
  timeout: 6,
  memory: 7,
  internal: 70
} as const

/** A failure to report as one line on stderr (`error: <message>`) with this exit code. */
export class Failure extends Error {
  constructor(
    message: string,
    readonly code: number = ExitCode.usage
  ) {
    super(message)
  }
}

/** Runs `effect`; a failure becomes a `Failure` with `describe(error)`. */
export const run = async <A, E>(effect: Effect.Effect<A, E>, describe: (e: E) => string, code?: number): Promise<A> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (failure !== undefined && failure._tag === "Fail") throw new Failure(describe(failure.error), code)
  throw Cause.squash(exit.cause)
}

const ioErrorText = (path: string, e: unknown): string => {
  const code = (e as { code?: unknown }).code
  if (code === "ENOENT") return `${path}: no such file`
  if (code === "EISDIR") return `${path}: is a directory`
  if (code === "EACCES") return `${path}: permission denied`
  return `${path}: ${e instanceof Error ? e.message : String(e)}`
}

/** File access relative to `io.cwd`; every failure is a `Failure` (exit 2) naming the path. */
export const makeFiles = (io: Io) => {
  const cwd = io.cwd ?? process.cwd()
  const at = (path: string) => resolve(cwd, path)
  return {
    cwd,
    at,
    read: async (path: string): Promise<Uint8Array> => {
      try {
        return new Uint8Array(await readFile(at(path)))
      } catch (e) {
        throw new Failure(`cannot read ${ioErrorText(path, e)}`)
      }
    },
    /** Fails (exit 2) when `path` exists, unless `force`; `what` names the file in the message. */
    refuseOverwrite: async (path: string, what: string, force: boolean): Promise<void> => {
      if (force) return
      const exists = await access(at(path), constants.F_OK).then(
        () => true,
        () => false
      )
      if (exists) throw new Failure(`${path} exists; not overwriting ${what} (use --force)`)
    },
    write: async (path: string, bytes: Uint8Array | string, options: { secret?: boolean } = {}) => {
      try {
        await writeFile(at(path), bytes, options.secret === true ? { mode: 0o600 } : {})
      } catch (e) {
        throw new Failure(`cannot write ${ioErrorText(path, e)}`)
      }
    }
  }
}
export type Files = ReturnType<typeof makeFiles>

export const textOf = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

export const parseJson = (path: string, bytes: Uint8Array): unknown => {
  try {
    return JSON.parse(textOf(bytes))
  } catch {
    throw new Failure(`${path}: not valid JSON`)
  }
}

/** Reads a module and checks its structure; malformed → one line with the byte offset (exit 2). */
export const readWasm = async (files: Files, path: string): Promise<{ bytes: Uint8Array; info: ModuleInfo }> => {
  const bytes = await files.read(path)
  const info = readModule(bytes)
  if (!info.ok) {
    throw new Failure(`${path}: not a valid WebAssembly module: ${info.error.reason} at byte ${info.error.offset}`)
  }
  return { bytes, info: info.value }
}

/**
 * Reads trust files: a trust store (`{ keys: [...] }`), a key file or public
 * key file (`{ publicKey, ... }`), or a bare 64-hex public key. A key's label
 * defaults to its file's name.
 */
export const readTrust = async (files: Files, paths: ReadonlyArray<string>): Promise<TrustStore> => {
  let store = TrustStore.empty
  for (const path of paths) {
    const bytes = await files.read(path)
    const text = textOf(bytes).trim()
    const json: unknown = /^[0-9a-fA-F]{64}$/.test(text) ? { publicKey: text } : parseJson(path, bytes)
    const more = await run(TrustStore.fromJson(json), (e) => `${path}: ${e.reason}`)
    for (const key of more.keys) store = store.add(key.publicKey, key.label ?? basename(path))
  }
  return store
}
