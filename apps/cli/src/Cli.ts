/**
 * The `agent-runtime` command line: `keygen`, `sign`, `verify`, `inspect`.
 *
 * `main(argv, io)` runs one command and resolves to the process exit code:
 * - 0 success. For `verify`: a trusted key signed the module. For `inspect`:
 *   the module is well-formed, whatever its signature status (inspect
 *   reports it) — unless `--trust` is given.
 * - 1 the signature does not verify: `verify`, and `inspect --trust` when the
 *   signature is missing, malformed, tampered, untrusted or bad (the report
 *   is still printed; the reason is one line on stderr).
 * - 2 bad usage or bad input (missing file, not a WebAssembly module — with
 *   the byte offset —, malformed key file, `sign`/`keygen` output that exists
 *   without `--force`).
 * Errors are one line on stderr, never a stack trace. Signatures follow
 * `@agent-runtime/signing` (ed25519 over hash + name + version, embedded in
 * the `agent-runtime.signature` custom section or detached as a `.sig` file).
 *
 * @since 0.1.0
 */
import {
  decodeKeyPair,
  encodeKeyPair,
  encodePublicKey,
  generateKeyPair,
  type InvalidKey,
  moduleHash,
  readSignature,
  type SignatureLookup,
  signDetached,
  signModule,
  TrustStore,
  verifyModule
} from "@agent-runtime/signing"
import { type ExportDesc, type ImportDesc, type ModuleInfo, readModule } from "@agent-runtime/wasm-binary"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { constants } from "node:fs"
import { access, readFile, writeFile } from "node:fs/promises"
import { basename, resolve } from "node:path"
import { parseArgs } from "node:util"
import { BUNDLE_USAGE, bundleCommand } from "./Bundle.js"
import { describeMemory, describeType, formatBytes } from "./Describe.js"

/** Where a command writes: one call per line of output (no trailing newline). */
export interface Io {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
  /** Directory relative paths resolve against (default: `process.cwd()`). */
  readonly cwd?: string | undefined
}

/** Exit codes of `main`. */
export const ExitCode = { ok: 0, invalid: 1, usage: 2, internal: 70 } as const

/** A failure to report as one line on stderr with this exit code. */
class CliError extends Error {
  constructor(
    message: string,
    readonly code: number = ExitCode.usage
  ) {
    super(message)
  }
}

export const USAGE = `usage: agent-runtime <command> [options]

commands:
  keygen [--out key.json] [--force]
      generate an ed25519 key pair; with --out, write key.json (secret) and key.pub.json (public)
  sign <in.wasm> --key key.json --name N --version V [--out out.wasm] [--detached out.sig] [--force]
      embed a signature (default --out: <in>.signed.wasm) or write a detached one; never
      overwrites an existing file without --force
  verify <file.wasm> --trust key.json|key.pub.json|trust.json [--trust …] [--sig file.sig] --name N --version V
      exit 0 when a trusted key signed this module for N@V, 1 (with the reason) otherwise
  inspect <file.wasm> [--json] [--trust file …] [--sig file.sig]
      exports and imports with their types, memories, custom sections, hash and signature status;
      exit 0 for any well-formed module, but with --trust exit 1 unless a trusted key signed it
${BUNDLE_USAGE}`

/** Runs `effect`; a failure becomes a `CliError` with `describe(error)`. */
const run = async <A, E>(effect: Effect.Effect<A, E>, describe: (e: E) => string, code?: number): Promise<A> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (failure !== undefined && failure._tag === "Fail") throw new CliError(describe(failure.error), code)
  throw Cause.squash(exit.cause)
}

const ioErrorText = (path: string, e: unknown): string => {
  const code = (e as { code?: unknown }).code
  if (code === "ENOENT") return `${path}: no such file`
  if (code === "EISDIR") return `${path}: is a directory`
  if (code === "EACCES") return `${path}: permission denied`
  return `${path}: ${e instanceof Error ? e.message : String(e)}`
}

const makeFiles = (io: Io) => {
  const cwd = io.cwd ?? process.cwd()
  const at = (path: string) => resolve(cwd, path)
  return {
    at,
    read: async (path: string): Promise<Uint8Array> => {
      try {
        return new Uint8Array(await readFile(at(path)))
      } catch (e) {
        throw new CliError(`cannot read ${ioErrorText(path, e)}`)
      }
    },
    /** Fails (exit 2) when `path` exists, unless `force`; `what` names the file in the message. */
    refuseOverwrite: async (path: string, what: string, force: boolean): Promise<void> => {
      if (force) return
      const exists = await access(at(path), constants.F_OK).then(
        () => true,
        () => false
      )
      if (exists) throw new CliError(`${path} exists; not overwriting ${what} (use --force)`)
    },
    write: async (path: string, bytes: Uint8Array | string, options: { secret?: boolean } = {}) => {
      try {
        await writeFile(at(path), bytes, options.secret === true ? { mode: 0o600 } : {})
      } catch (e) {
        throw new CliError(`cannot write ${ioErrorText(path, e)}`)
      }
    }
  }
}
type Files = ReturnType<typeof makeFiles>

const textOf = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

const parseJson = (path: string, bytes: Uint8Array): unknown => {
  try {
    return JSON.parse(textOf(bytes))
  } catch {
    throw new CliError(`${path}: not valid JSON`)
  }
}

/** Reads a module and checks its structure; malformed → one line with the byte offset. */
const readWasm = async (files: Files, path: string): Promise<{ bytes: Uint8Array; info: ModuleInfo }> => {
  const bytes = await files.read(path)
  const info = readModule(bytes)
  if (!info.ok) {
    throw new CliError(`${path}: not a valid WebAssembly module: ${info.error.reason} at byte ${info.error.offset}`)
  }
  return { bytes, info: info.value }
}

/**
 * Reads trust files: a trust store (`{ keys: [...] }`), a key file or public
 * key file (`{ publicKey, ... }`), or a bare 64-hex public key.
 */
const readTrust = async (files: Files, paths: ReadonlyArray<string>): Promise<TrustStore> => {
  let store = TrustStore.empty
  for (const path of paths) {
    const bytes = await files.read(path)
    const text = textOf(bytes).trim()
    const json: unknown = /^[0-9a-fA-F]{64}$/.test(text) ? { publicKey: text } : parseJson(path, bytes)
    const more = await run(TrustStore.fromJson(json), (e: InvalidKey) => `${path}: ${e.reason}`)
    for (const key of more.keys) store = store.add(key.publicKey, key.label ?? basename(path))
  }
  return store
}

const required = (values: Record<string, unknown>, name: string): string => {
  const value = values[name]
  if (typeof value !== "string" || value.length === 0) throw new CliError(`missing --${name}`)
  return value
}

const onePositional = (positionals: ReadonlyArray<string>, what: string): string => {
  if (positionals.length === 0) throw new CliError(`missing ${what}`)
  if (positionals.length > 1) throw new CliError(`unexpected argument ${positionals[1]}`)
  return positionals[0]!
}

const keygen = async (args: ReadonlyArray<string>, io: Io, files: Files): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { out: { type: "string" }, force: { type: "boolean" } },
    strict: true,
    allowPositionals: true
  })
  if (positionals.length > 0) throw new CliError(`unexpected argument ${positionals[0]}`)
  const keyPair = generateKeyPair()
  const json = `${JSON.stringify(encodeKeyPair(keyPair), null, 2)}\n`
  if (values.out === undefined) {
    io.out(json.trimEnd())
    return ExitCode.ok
  }
  const pubPath = values.out.replace(/(\.json)?$/, ".pub.json")
  await files.refuseOverwrite(values.out, "a key file", values.force === true)
  await files.write(values.out, json, { secret: true })
  await files.write(pubPath, `${JSON.stringify(encodePublicKey(keyPair), null, 2)}\n`)
  io.out(`key ${keyPair.keyId}`)
  io.out(`wrote ${values.out} (secret key, keep private) and ${pubPath} (public key, for --trust)`)
  return ExitCode.ok
}

const sign = async (args: ReadonlyArray<string>, io: Io, files: Files): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      key: { type: "string" },
      name: { type: "string" },
      version: { type: "string" },
      out: { type: "string" },
      detached: { type: "string" },
      force: { type: "boolean" }
    },
    strict: true,
    allowPositionals: true
  })
  const input = onePositional(positionals, "<in.wasm>")
  const keyPath = required(values, "key")
  const subject = { name: required(values, "name"), version: required(values, "version") }
  const keyPair = await run(
    decodeKeyPair(parseJson(keyPath, await files.read(keyPath))),
    (e) => `${keyPath}: ${e.reason}`
  )
  const { bytes } = await readWasm(files, input)
  const signError = (e: { message: string }) => `${input}: ${e.message}`
  const embedded = values.out !== undefined || values.detached === undefined
  const out = values.out ?? input.replace(/(\.wasm)?$/, ".signed.wasm")
  // Check every output before writing any, so a refusal leaves nothing half-done.
  const force = values.force === true
  if (values.detached !== undefined) await files.refuseOverwrite(values.detached, "an output file", force)
  if (embedded) await files.refuseOverwrite(out, "an output file", force)
  if (values.detached !== undefined) {
    const sig = await run(signDetached(bytes, subject, keyPair.secretKey), signError)
    await files.write(values.detached, sig)
    io.out(`signed ${subject.name}@${subject.version} with key ${keyPair.keyId}: wrote ${values.detached}`)
  }
  if (embedded) {
    const signed = await run(signModule(bytes, subject, keyPair.secretKey), signError)
    await files.write(out, signed)
    io.out(`signed ${subject.name}@${subject.version} with key ${keyPair.keyId}: wrote ${out}`)
  }
  return ExitCode.ok
}

const verify = async (args: ReadonlyArray<string>, io: Io, files: Files): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      trust: { type: "string", multiple: true },
      sig: { type: "string" },
      name: { type: "string" },
      version: { type: "string" },
      "allow-unsigned": { type: "boolean" }
    },
    strict: true,
    allowPositionals: true
  })
  const input = onePositional(positionals, "<file.wasm>")
  if (values.trust === undefined || values.trust.length === 0) throw new CliError("missing --trust")
  const subject = { name: required(values, "name"), version: required(values, "version") }
  const trustStore = await readTrust(files, values.trust)
  const signature = values.sig === undefined ? undefined : await files.read(values.sig)
  // No structural pre-check here: a module that a flipped byte made malformed is an invalid
  // signature subject (exit 1, "malformed module at byte N"), as the verifier reports it.
  const bytes = await files.read(input)
  const result = await Effect.runPromise(
    Effect.result(
      verifyModule(
        bytes,
        { ...subject, signature },
        { trustStore, allowUnsigned: values["allow-unsigned"] === true }
      )
    )
  )
  if (result._tag === "Failure") {
    io.err(`invalid: ${input}: ${result.failure.reason}`)
    return ExitCode.invalid
  }
  const { hash, keyId } = result.success
  if (keyId === undefined) {
    io.out(`valid (unsigned, allowed): ${subject.name}@${subject.version} hash ${hash}`)
  } else {
    const label = trustStore.get(keyId)?.label
    io.out(`valid: ${subject.name}@${subject.version} signed by ${keyId}${label === undefined ? "" : ` (${label})`}`)
    io.out(`hash ${hash}`)
  }
  return ExitCode.ok
}

/**
 * What `inspect` found about a module's signature.
 *
 * - `status`: `unsigned` (no signature); `signed` (a well-formed signature
 *   whose hash matches the module); `invalid` (a signature is present but no
 *   key could ever vouch for it: `malformed signature: …`, `multiple
 *   signature sections (n)`, `tampered: …` — `reason` says which). These are
 *   decided without any trust file.
 * - `trusted`: present exactly when `--trust` was given; `true` when a
 *   trusted key signed the module (the `verify` checks, against the name and
 *   version the signature carries), else `false` with `reason` (`unsigned`,
 *   the invalid reason, `untrusted key <keyId>`, `bad signature`).
 */
interface SignatureStatus {
  readonly status: "unsigned" | "signed" | "invalid"
  readonly source?: "embedded" | "detached"
  readonly keyId?: string
  readonly name?: string
  readonly version?: string
  readonly trusted?: boolean
  readonly label?: string
  readonly reason?: string
}

const signatureStatus = async (
  bytes: Uint8Array,
  hash: string,
  detached: Uint8Array | undefined,
  trust: TrustStore | undefined
): Promise<SignatureStatus> => {
  const untrusted = (s: SignatureStatus): SignatureStatus => (trust === undefined ? s : { ...s, trusted: false })
  const lookup = await Effect.runPromise(Effect.result(readSignature(bytes, { detached })))
  if (lookup._tag === "Failure") return untrusted({ status: "invalid", reason: lookup.failure.reason })
  const found: SignatureLookup = lookup.success
  if (found._tag === "Unsigned") return untrusted({ status: "unsigned", ...(trust === undefined ? {} : { reason: "unsigned" }) })
  const { keyId, name, version } = found.signature
  const base = { source: found.source, keyId, name, version } as const
  // The same wording as `verify` (`@agent-runtime/signing` verifyModule), checked with or without --trust.
  if (found.signature.hash !== hash) {
    const reason = `tampered: the module hash ${hash} is not the signed hash ${found.signature.hash}`
    return untrusted({ status: "invalid", ...base, reason })
  }
  if (trust === undefined) return { status: "signed", ...base }
  const checked = await Effect.runPromise(
    Effect.result(verifyModule(bytes, { name, version, signature: detached }, { trustStore: trust }))
  )
  if (checked._tag === "Failure") return { status: "signed", ...base, trusted: false, reason: checked.failure.reason }
  const label = trust.get(keyId)?.label
  return { status: "signed", ...base, trusted: true, ...(label === undefined ? {} : { label }) }
}

const describeSignature = (s: SignatureStatus): string => {
  const head = s.keyId === undefined ? "" : `signed by ${s.keyId} as ${s.name}@${s.version} (${s.source})`
  if (s.status === "unsigned") return s.trusted === undefined ? "unsigned" : "unsigned; NOT trusted"
  if (s.status === "invalid") return `invalid: ${s.reason}${head === "" ? "" : ` [${head}]`}`
  if (s.trusted === undefined) return `${head}; trust not checked (give --trust)`
  return s.trusted ? `${head}; trusted${s.label === undefined ? "" : ` (${s.label})`}` : `${head}; NOT trusted: ${s.reason}`
}

const importJson = (i: ImportDesc) => ({ module: i.module, name: i.name, text: describeType(i.name, i.type), type: i.type })
const exportJson = (e: ExportDesc) => ({ name: e.name, text: describeType(e.name, e.type), type: e.type })

const inspect = async (args: ReadonlyArray<string>, io: Io, files: Files): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { json: { type: "boolean" }, trust: { type: "string", multiple: true }, sig: { type: "string" } },
    strict: true,
    allowPositionals: true
  })
  const input = onePositional(positionals, "<file.wasm>")
  const trust = values.trust === undefined ? undefined : await readTrust(files, values.trust)
  const detached = values.sig === undefined ? undefined : await files.read(values.sig)
  const { bytes, info } = await readWasm(files, input)
  const hash = await Effect.runPromise(moduleHash(bytes))
  const signature = await signatureStatus(bytes, hash, detached, trust)
  // With --trust, inspect answers like verify: exit 1 (one line on stderr) unless a trusted key signed it.
  const exitCode = signature.trusted === false ? ExitCode.invalid : ExitCode.ok
  const report = () => {
    if (exitCode !== ExitCode.ok) io.err(`invalid: ${input}: ${signature.reason}`)
    return exitCode
  }
  const customSections = info.customSections.map((c) => ({ name: c.name, size: c.dataLength }))
  if (values.json === true) {
    const json = {
      file: input,
      size: bytes.length,
      hash,
      imports: info.imports.map(importJson),
      exports: info.exports.map(exportJson),
      memories: info.memories.map((m) => ({ ...m, text: describeMemory(m) })),
      tables: info.tables,
      globals: info.globals.map((g) => g.type),
      start: info.start ?? null,
      customSections,
      signature
    }
    io.out(JSON.stringify(json, (_k, v: unknown) => (v === undefined ? null : v), 2))
    return report()
  }
  io.out(`module     ${input} (${formatBytes(bytes.length)})`)
  io.out(`hash       ${hash}`)
  io.out(`signature  ${describeSignature(signature)}`)
  io.out(`imports    ${info.imports.length}`)
  for (const i of info.imports) io.out(`  ${i.module}.${i.name}: ${describeType(i.name, i.type)}`)
  io.out(`exports    ${info.exports.length}`)
  for (const e of info.exports) io.out(`  ${describeType(e.name, e.type)}`)
  io.out(`memories   ${info.memories.length}`)
  for (const m of info.memories) {
    const max = m.maxPages === undefined ? "no maximum" : `max ${formatBytes(m.maxPages * 65_536)}`
    io.out(`  memory ${describeMemory(m)}: min ${formatBytes(m.minPages * 65_536)}, ${max}`)
  }
  if (info.start !== undefined) io.out(`start      func ${info.start}`)
  io.out(`custom     ${customSections.length}`)
  for (const c of customSections) io.out(`  ${c.name} (${formatBytes(c.size)})`)
  return report()
}

const commands: Record<string, (args: ReadonlyArray<string>, io: Io, files: Files) => Promise<number>> = {
  keygen,
  sign,
  verify,
  inspect,
  bundle: (args, io) => bundleCommand(args, io)
}

/**
 * Runs the command line `argv` (without `node` and the script: e.g.
 * `["inspect", "agent.wasm", "--json"]`) and resolves to the exit code (see
 * `ExitCode`). Never rejects: every failure is reported on `io.err`.
 */
export const main = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const [command, ...rest] = argv
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    ;(command === undefined ? io.err : io.out)(USAGE)
    return command === undefined ? ExitCode.usage : ExitCode.ok
  }
  const handler = commands[command]
  if (handler === undefined) {
    io.err(`error: unknown command ${JSON.stringify(command)} (commands: ${Object.keys(commands).join(", ")})`)
    return ExitCode.usage
  }
  try {
    return await handler(rest, io, makeFiles(io))
  } catch (e) {
    if (e instanceof CliError) {
      io.err(`error: ${e.message}`)
      return e.code
    }
    const code = (e as { code?: unknown }).code
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
      io.err(`error: ${(e as Error).message}`)
      return ExitCode.usage
    }
    io.err(`internal error: ${e instanceof Error ? e.message : String(e)}`)
    return ExitCode.internal
  }
}
