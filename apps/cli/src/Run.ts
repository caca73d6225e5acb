/**
 * `agent-runtime run <module.wasm> <export> [args…]`: loads one module into a
 * fresh in-memory `AgentRuntime` (`@agent-runtime/domain`), spawns one agent
 * (`cli`) with the given budget, invokes one export and prints its typed
 * result or typed error.
 *
 * - Verification: with `--trust FILE…` (and `--sig file.sig` for a detached
 *   signature) the module must be signed by a trusted key, like `verify`, for
 *   the name and version its signature carries; without `--trust` the module
 *   is NOT verified (unsigned and signed modules alike run).
 * - Arguments are read by the export's signature (from the binary): i32 and
 *   f32/f64 as JavaScript numbers (`-5`, `0x10`, `1.5`, `inf`, `nan`), i64
 *   as a bigint (`9007199254740993`). Text that is no number for its type is
 *   passed through as text, so the runtime refuses it with its typed
 *   `SignatureMismatch`, as it does a wrong argument count.
 * - Output: the results as `[41]` (i64 as decimal bigint text, f32/f64 as
 *   JavaScript prints numbers) on stdout; a typed error as `<Tag>: <message>`
 *   on stderr (`Trap: div trapped: divide by zero`). `--json`: one JSON object
 *   on stdout either way, `{ ok, results?, types?, error?: { _tag, message,
 *   ...fields }, exitCode }` (i64 as a string).
 * - Engines: `native` (in-process; `--fuel` stops runaway guests; no
 *   preemptive `--timeout`) or `node` (worker threads: `--timeout` preempts).
 * - `--wasi`: runs a WASI command's `_start` on the node engine with the
 *   positional arguments after the module (and after `--`) as its argv (argv[0]
 *   is the module's file name), `--env K=V…`, and `--dir host::guest…`
 *   preopened directories; what the guest wrote to stdout/stderr is printed
 *   when it ends, and its `proc_exit` code is the exit code.
 *
 * Exit codes (`ExitCode`): 0 the call returned; 1 `InvalidSignature`; 2 bad
 * usage or input (unreadable or malformed file, `InvalidConfig`,
 * `CompileError`, an option value); 3 the call does not fit the module
 * (`FunctionNotFound`, `SignatureMismatch`); 4 `Trap` or
 * `InstantiationError`; 5 `FuelExhausted`; 6 `Timeout`; 7 `MemoryExceeded` or
 * `InsufficientMemory`; 70 any other failure. With `--wasi`, the guest's
 * `proc_exit` code when it called it, else those codes.
 *
 * @since 0.1.0
 */
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  makeMetadata,
  ModuleVerifier,
  type WasmEngine,
  type WasmValue
} from "@agent-runtime/domain"
import { moduleHash, readSignature, verifyModule } from "@agent-runtime/signing"
import type { FuncType, ValueType } from "@agent-runtime/wasm-binary"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { mkdir } from "node:fs/promises"
import { basename } from "node:path"
import { ExitCode, Failure, type Files, type Io, readTrust, readWasm } from "./Files.js"

/** `run`'s parsed options. Sizes in bytes, durations in ms, fuel in fuel units. */
export interface RunInput {
  readonly module: string
  /** The export to invoke (`_start` with `wasi`, where every positional is an argv entry instead). */
  readonly export: string | undefined
  readonly args: ReadonlyArray<string>
  /** The agent's memory budget in bytes (default 16 MiB). */
  readonly memory: number
  readonly fuel: number | undefined
  readonly timeoutMs: number | undefined
  readonly engine: "native" | "node" | undefined
  readonly trust: ReadonlyArray<string>
  readonly sig: string | undefined
  readonly json: boolean
  readonly wasi: boolean
  /** `host::guest` (or `dir`, preopened as itself). */
  readonly dirs: ReadonlyArray<string>
  /** `K=V`. */
  readonly env: ReadonlyArray<string>
}

/** The agent id `run` spawns. */
const AGENT = "cli"

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i
const UNIT: Record<string, number> = {
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1 << 20,
  mb: 1e6,
  mib: 1 << 20,
  g: 1 << 30,
  gb: 1e9,
  gib: 1 << 30
}

/** `16MiB`, `512KiB`, `1GiB`, `1048576` (bytes; `k`/`m`/`g` are binary, `KB`/`MB`/`GB` decimal) → bytes, or `undefined`. */
export const parseSize = (text: string): number | undefined => {
  const m = SIZE.exec(text.trim())
  if (m === null) return undefined
  const bytes = Number(m[1]) * UNIT[(m[2] ?? "b").toLowerCase()]!
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** `200ms`, `2s`, `1.5s`, `1m`, `200` (ms) → milliseconds (> 0), or `undefined`. */
export const parseDuration = (text: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim())
  if (m === null) return undefined
  const ms = Number(m[1]) * (m[2] === "s" ? 1000 : m[2] === "m" ? 60_000 : 1)
  return ms > 0 ? ms : undefined
}

const FLOAT = /^[-+]?(inf|infinity|nan)$/i

/**
 * One argument's text read as the WebAssembly type it is passed as; text that
 * is no number of that type stays text (the runtime refuses it with `SignatureMismatch`).
 */
export const parseValue = (type: ValueType | undefined, text: string): WasmValue | string => {
  const t = text.trim()
  if (type === "i64") {
    try {
      return t === "" ? text : BigInt(t)
    } catch {
      return text
    }
  }
  if ((type === "f32" || type === "f64") && FLOAT.test(t)) {
    const lower = t.toLowerCase()
    if (lower.endsWith("nan")) return Number.NaN
    return lower.startsWith("-") ? -Infinity : Infinity
  }
  if (type === "i32" || type === "f32" || type === "f64") {
    const n = t === "" ? Number.NaN : Number(t)
    return Number.isNaN(n) ? text : n
  }
  return text
}

const valueText = (v: unknown): string =>
  typeof v === "bigint" ? v.toString() : typeof v === "number" ? String(v) : (JSON.stringify(v) ?? String(v))
const valueJson = (v: unknown): unknown =>
  typeof v === "bigint" ? v.toString() : typeof v === "number" && !Number.isFinite(v) ? String(v) : v

/** The exit code of a typed runtime error (see the module doc). */
export const exitCodeOf = (tag: string): number => {
  switch (tag) {
    case "InvalidSignature":
      return ExitCode.invalid
    case "InvalidConfig":
    case "CompileError":
    case "ModuleTooLarge":
      return ExitCode.usage
    case "FunctionNotFound":
    case "SignatureMismatch":
      return ExitCode.call
    case "Trap":
    case "InstantiationError":
      return ExitCode.trap
    case "FuelExhausted":
      return ExitCode.fuel
    case "Timeout":
      return ExitCode.timeout
    case "MemoryExceeded":
    case "InsufficientMemory":
      return ExitCode.memory
    default:
      return ExitCode.internal
  }
}

/** A `ModuleVerifier` that verifies nothing (no `--trust`): every module is admitted as unsigned. */
const noVerification = Layer.succeed(ModuleVerifier, {
  verify: (bytes) => Effect.map(moduleHash(bytes), (hash) => ({ hash, keyId: undefined }))
})

interface Outcome {
  readonly results?: ReadonlyArray<unknown>
  readonly error?: { readonly _tag: string; readonly message: string } & Record<string, unknown>
  /** WASI only: what the guest wrote and its exit code. */
  readonly wasi?:
    | { readonly stdout: string; readonly stderr: string; readonly exitCode: number | undefined }
    | undefined
}

const lines = (text: string): Array<string> => (text === "" ? [] : text.replace(/\n$/, "").split("\n"))

/** Runs `agent-runtime run` (see the module doc); resolves to the exit code. */
export const runCommand = async (input: RunInput, io: Io, files: Files): Promise<number> => {
  const engineName = input.engine ?? (input.wasi ? "node" : "native")
  if (input.wasi && engineName !== "node")
    throw new Failure("--wasi needs --engine node (the native engine has no WASI)")
  if (!input.wasi && (input.dirs.length > 0 || input.env.length > 0)) throw new Failure("--dir and --env need --wasi")
  const fn = input.wasi ? "_start" : input.export
  if (fn === undefined) throw new Failure("missing <export>")
  const wasiArgs = input.wasi
    ? [basename(input.module), ...(input.export === undefined ? [] : [input.export]), ...input.args]
    : []
  const env: Record<string, string> = {}
  for (const kv of input.env) {
    const i = kv.indexOf("=")
    if (i <= 0) throw new Failure(`--env ${kv}: expected K=V`)
    env[kv.slice(0, i)] = kv.slice(i + 1)
  }
  const preopens: Record<string, string> = {}
  for (const spec of input.dirs) {
    const [host = "", guest = host] = spec.split("::")
    if (host === "" || guest === "") throw new Failure(`--dir ${spec}: expected host::guest`)
    await mkdir(files.at(host), { recursive: true }).catch(() => undefined)
    preopens[guest] = files.at(host)
  }

  const { bytes, info } = await readWasm(files, input.module)
  const trust = input.trust.length === 0 ? undefined : await readTrust(files, input.trust)
  const detached = input.sig === undefined ? undefined : await files.read(input.sig)
  // The signature names what the module is; verification then checks it (name, version, key, bytes).
  const found = await Effect.runPromise(Effect.result(readSignature(bytes, { detached, module: input.module })))
  const claimed =
    found._tag === "Success" && found.success._tag === "Signed"
      ? { name: found.success.signature.name, version: found.success.signature.version }
      : { name: basename(input.module).replace(/\.wasm$/, ""), version: "0.0.0" }
  const metadata = makeMetadata({ ...claimed, ...(detached === undefined ? {} : { signature: detached }) })

  const type = info.exports.find((e) => e.name === fn && e.type.kind === "function")?.type as FuncType | undefined
  const args = input.wasi ? [] : (input.args.map((a, i) => parseValue(type?.params[i], a)) as Array<WasmValue>)

  const verifier =
    trust === undefined
      ? noVerification
      : Layer.succeed(ModuleVerifier, { verify: (b, m) => verifyModule(b, m, { trustStore: trust }) })
  let output: (() => Outcome["wasi"]) | undefined
  const engine: Layer.Layer<WasmEngine> =
    engineName === "node"
      ? await import("@agent-runtime/engine-node").then(({ NodeEngine }) => {
          const options = input.wasi ? { wasi: { preopens: () => preopens, args: () => wasiArgs, env: () => env } } : {}
          // Keeps a reader of the agent's WASI output; it must be read before the engine's scope ends (its files go with it).
          const capture = Layer.effectDiscard(
            Effect.map(Effect.service(NodeEngine.NodeEngine), (e) => {
              output = () => e.output(AGENT)
            })
          )
          return Layer.provideMerge(capture, NodeEngine.layerWith({ workers: 1, ...options }))
        })
      : await import("@agent-runtime/engine-native").then(({ NativeEngine }) => NativeEngine.layer)

  const program = Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const moduleId = yield* runtime.loadModule(bytes, metadata)
    yield* runtime.spawnAgent(agentId(AGENT), moduleId, {
      memoryLimit: input.memory,
      // one call: keep the instance a trap leaves (and, for WASI, the output and exit code it wrote)
      onTrap: "keep",
      ...(input.fuel === undefined ? {} : { fuel: input.fuel }),
      ...(input.timeoutMs === undefined ? {} : { timeoutMs: input.timeoutMs })
    })
    const called = yield* Effect.exit(runtime.invoke(agentId(AGENT), fn, args))
    return { called, wasi: output?.() }
  })
  const exit = await Effect.runPromiseExit(
    program.pipe(
      Effect.flatMap(({ called, wasi }) =>
        Effect.map(called, (results) => ({ results, wasi })).pipe(
          Effect.catch((error) => Effect.succeed({ error, wasi }))
        )
      ),
      Effect.provide(AgentRuntimes.layerMemory().pipe(Layer.provide(Layer.mergeAll(engine, verifier))))
    )
  )
  let outcome: Outcome
  if (Exit.isSuccess(exit) && "results" in exit.value) {
    outcome = { results: exit.value.results, wasi: exit.value.wasi }
  } else {
    const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    const failed: unknown = Exit.isSuccess(exit)
      ? "error" in exit.value
        ? exit.value.error
        : undefined
      : reason !== undefined && reason._tag === "Fail"
        ? reason.error
        : undefined
    if (failed === undefined) throw Exit.isFailure(exit) ? Cause.squash(exit.cause) : new Error("no outcome")
    const e = failed as unknown as { readonly _tag: string; readonly message: string }
    outcome = {
      error: { ...(e as object), _tag: e._tag, message: e.message },
      wasi: Exit.isSuccess(exit) ? exit.value.wasi : undefined
    }
  }
  return report(input, fn, type, outcome, io)
}

const report = (input: RunInput, fn: string, type: FuncType | undefined, outcome: Outcome, io: Io): number => {
  const wasiCode = outcome.wasi?.exitCode
  const code =
    input.wasi && wasiCode !== undefined
      ? wasiCode
      : outcome.error === undefined
        ? ExitCode.ok
        : exitCodeOf(outcome.error._tag)
  if (input.json) {
    const json = {
      ok: outcome.error === undefined,
      function: fn,
      ...(outcome.results === undefined
        ? {}
        : { results: outcome.results.map(valueJson), ...(type === undefined ? {} : { types: type.results }) }),
      ...(outcome.error === undefined ? {} : { error: outcome.error }),
      ...(outcome.wasi === undefined ? {} : { stdout: outcome.wasi.stdout, stderr: outcome.wasi.stderr }),
      exitCode: code
    }
    io.out(JSON.stringify(json, (_k, v: unknown) => valueJson(v)))
    return code
  }
  if (outcome.wasi !== undefined) {
    for (const line of lines(outcome.wasi.stdout)) io.out(line)
    for (const line of lines(outcome.wasi.stderr)) io.err(line)
    // proc_exit(n) is how a command ends, not an error to report
    if (wasiCode !== undefined) return code
  }
  if (outcome.error !== undefined) {
    io.err(`${outcome.error._tag}: ${outcome.error.message}`)
    return code
  }
  if (!input.wasi) io.out(`[${(outcome.results ?? []).map(valueText).join(", ")}]`)
  return code
}
