/**
 * `inspect`: a module's exports and imports with their types, memories,
 * custom sections, hash and signature status (`@agent-runtime/wasm-binary`
 * for the structure, `@agent-runtime/signing` for the signature).
 *
 * @since 0.1.0
 */
import { moduleHash, readSignature, type SignatureLookup, type TrustStore, verifyModule } from "@agent-runtime/signing"
import type { ExportDesc, ImportDesc } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import { describeMemory, describeType, formatBytes } from "./Describe.js"
import { ExitCode, type Files, type Io, readTrust, readWasm } from "./Files.js"

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
  if (found._tag === "Unsigned")
    return untrusted({ status: "unsigned", ...(trust === undefined ? {} : { reason: "unsigned" }) })
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
  return s.trusted
    ? `${head}; trusted${s.label === undefined ? "" : ` (${s.label})`}`
    : `${head}; NOT trusted: ${s.reason}`
}

const importJson = (i: ImportDesc) => ({
  module: i.module,
  name: i.name,
  text: describeType(i.name, i.type),
  type: i.type
})
const exportJson = (e: ExportDesc) => ({ name: e.name, text: describeType(e.name, e.type), type: e.type })

/** `inspect <file.wasm> [--json] [--trust FILE…] [--sig file.sig]`. */
export interface InspectInput {
  readonly input: string
  readonly json: boolean
  readonly trust: ReadonlyArray<string>
  readonly sig: string | undefined
}

/** Prints the report; exit 0 for any well-formed module, but with `--trust` exit 1 unless a trusted key signed it. */
export const inspect = async (options: InspectInput, io: Io, files: Files): Promise<number> => {
  const { input } = options
  const trust = options.trust.length === 0 ? undefined : await readTrust(files, options.trust)
  const detached = options.sig === undefined ? undefined : await files.read(options.sig)
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
  if (options.json) {
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
