/**
 * `buildBundle`: the build step of the edge platform (the engine of
 * `agent-runtime bundle`). Verification and rewriting move from spawn time to
 * build time because the edge forbids compiling at run time (see
 * `BundleManifest`).
 *
 * For every module it (1) verifies the signature through the given
 * `ModuleVerifier` shape (`@agent-runtime/signing` `verifyModule` in the CLI:
 * ed25519 over hash + name + version, spec Invariant 5), (2) reads the
 * binary (`@agent-runtime/wasm-binary` `readModule`: exports and imports with
 * their types), (3) applies `rewriteModule` — memory cap to the agent's
 * budget in pages, fuel instrumentation with `initialFuel`, hidden state
 * exports — once per distinct rewrite the declared agents (and extra
 * variants) need, exactly as the domain does at spawn, and (4) records each
 * variant's digest. It returns the manifest and the files; writing them is
 * the caller's job (the CLI writes a directory), so this module is
 * platform-free.
 *
 * Errors: `InvalidSignature` (unsigned, tampered, untrusted key, wrong
 * metadata), `BundleBuildError` (malformed module with the byte offset, a
 * rewrite refused, an invalid agent config, a duplicate agent type or an
 * agent naming no module).
 *
 * @example
 * ```ts
 * const bundle = yield* buildBundle({
 *   modules: [{ name: "counter", version: "1.0.0", bytes }],
 *   agents: [{ type: "counter", module: "counter", memoryLimit: 1_048_576 }],
 *   verifier: { verify: (bytes, meta) => verifyModule(bytes, meta, { trustStore }) }
 * })
 * ```
 *
 * @since 0.1.0
 */
import {
  AgentConfig,
  CompileVariant,
  type InvalidSignature,
  makeMetadata,
  type ModuleVerifierShape
} from "@agent-runtime/domain"
import { type ExternType, type ModuleInfo, readModule, rewriteModule } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import { BundleBuildError } from "./BundleError.js"
import {
  type BundledAgent,
  type BundledModule,
  type BundledVariant,
  type BundleManifest,
  type ExternKind,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type RewriteParams,
  rewriteFor,
  variantKey
} from "./BundleManifest.js"
import { codeDigest, sha256Hex } from "./internal/digest.js"

/** A module to bundle: its signed bytes and the metadata it was signed for. */
export interface BundleModuleInput {
  /** Module name (signature subject), also how agents refer to it. */
  readonly name: string
  readonly version: string
  /** The module bytes (with the embedded signature, or with `signature` detached). */
  readonly bytes: Uint8Array
  /** A detached signature (`.sig` JSON bytes), when the module does not embed one. */
  readonly signature?: Uint8Array | undefined
}

/** An agent type the Worker may spawn, and the config its variant is made for. */
export interface BundleAgentInput {
  /** Agent type (unique), e.g. `"counter"`. */
  readonly type: string
  /** Name of a module in `modules`. */
  readonly module: string
  /** Memory limit in bytes (1 MiB ≤ limit ≤ 512 MiB); the cap is ⌊limit / 64 KiB⌋ pages. */
  readonly memoryLimit: number
  /** Fuel per call, in fuel units (metered variant); omit for an unmetered variant. */
  readonly fuel?: number | undefined
}

/** Options of `buildBundle`. */
export interface BuildBundleOptions {
  readonly modules: ReadonlyArray<BundleModuleInput>
  readonly agents: ReadonlyArray<BundleAgentInput>
  /**
   * More variants to precompile, beyond the agents' (e.g. every config a test
   * suite spawns); `limits` overrides the bundle's for this variant (a
   * runtime that runs some agents with other `limits` settings).
   */
  readonly variants?:
    | ReadonlyArray<{
        readonly module: string
        readonly memoryLimit: number
        readonly fuel?: number | undefined
        readonly limits?: Partial<BundleManifest["limits"]> | undefined
      }>
    | undefined
  /** The runtime's `limits` settings the Worker will run with (default: both `true`, the domain's defaults). */
  readonly limits?: Partial<BundleManifest["limits"]> | undefined
  /** Also bundle every module as loaded, unrewritten (default `true`; needed when a runtime compiles modules at load). */
  readonly includeOriginal?: boolean | undefined
  /** Checks signatures (the domain's `ModuleVerifier` shape). */
  readonly verifier: ModuleVerifierShape
}

/** A file of the bundle: a precompiled variant (`wasm`) or a module's original bytes (`data`). */
export interface BundleFile {
  /** Path relative to the bundle directory (`wasm/<digest>.wasm`, `modules/<hash>.bin`). */
  readonly path: string
  readonly kind: "wasm" | "data"
  readonly bytes: Uint8Array
}

/** The result of a build: the manifest and every file it lists. */
export interface Bundle {
  readonly manifest: BundleManifest
  readonly files: ReadonlyArray<BundleFile>
}

const externKinds = (info: ModuleInfo): { exports: Array<ExternKind>; imports: Array<ExternKind> } => ({
  exports: info.exports.map((e) => ({ name: e.name, kind: e.type.kind })),
  imports: info.imports.map((i) => ({ module: i.module, name: i.name, kind: i.type.kind }))
})

const memoryOf = (info: ModuleInfo) => {
  for (const i of info.imports) {
    if (i.type.kind === "memory") {
      const { kind: _kind, ...memory } = i.type
      return memory
    }
  }
  return info.memories[0] ?? null
}

const sameRewrite = (a: RewriteParams | null, b: RewriteParams | null): boolean =>
  a === null || b === null
    ? a === b
    : a.maxMemoryPages === b.maxMemoryPages && a.fuel === b.fuel && a.exportState === b.exportState

/** Builds the manifest and files of an edge bundle (see the module doc). */
export const buildBundle = (options: BuildBundleOptions): Effect.Effect<Bundle, BundleBuildError | InvalidSignature> =>
  Effect.gen(function* () {
    const limits = { memoryCap: options.limits?.memoryCap ?? true, exportState: options.limits?.exportState ?? true }
    const includeOriginal = options.includeOriginal ?? true
    const byName = new Map<string, BundleModuleInput>()
    for (const m of options.modules) {
      if (byName.has(m.name)) return yield* new BundleBuildError({ module: m.name, reason: "module listed twice" })
      byName.set(m.name, m)
    }
    // the configs every module needs a variant for
    const wanted = new Map<
      string,
      Array<{ memoryLimit: number; fuel: number | null; limits: BundleManifest["limits"] }>
    >()
    const types = new Set<string>()
    const want = (
      module: string,
      what: string,
      config: { memoryLimit: number; fuel?: number | undefined; limits?: Partial<BundleManifest["limits"]> | undefined }
    ) =>
      Effect.gen(function* () {
        if (!byName.has(module))
          return yield* new BundleBuildError({
            module,
            reason: `${what} names module ${JSON.stringify(module)}, which is not in the bundle`
          })
        const invalid = AgentConfig.validate({ memoryLimit: config.memoryLimit, fuel: config.fuel })
        if (invalid !== undefined) return yield* new BundleBuildError({ module, reason: `${what}: ${invalid.reason}` })
        const list = wanted.get(module) ?? []
        list.push({
          memoryLimit: config.memoryLimit,
          fuel: config.fuel ?? null,
          limits: { ...limits, ...config.limits }
        })
        wanted.set(module, list)
      })
    for (const a of options.agents) {
      if (types.has(a.type))
        return yield* new BundleBuildError({ module: a.module, reason: `agent type ${a.type} declared twice` })
      types.add(a.type)
      yield* want(a.module, `agent type ${a.type}`, a)
    }
    for (const v of options.variants ?? []) yield* want(v.module, "variant", v)

    const files: Array<BundleFile> = []
    const modules: Array<BundledModule> = []
    const hashOf = new Map<string, string>()
    for (const input of options.modules) {
      const label = `${input.name}@${input.version}`
      const verification = yield* options.verifier.verify(
        input.bytes,
        makeMetadata({ name: input.name, version: input.version, signature: input.signature })
      )
      const read = readModule(input.bytes)
      if (!read.ok) {
        return yield* new BundleBuildError({
          module: label,
          reason: `not a valid module: ${read.error.reason} at byte ${read.error.offset}`
        })
      }
      const info = read.value
      const memory = memoryOf(info)
      const rewrites: Array<RewriteParams | null> = includeOriginal ? [null] : []
      for (const config of wanted.get(input.name) ?? []) {
        const r = rewriteFor(info, config, config.limits)
        if (!rewrites.some((x) => sameRewrite(x, r))) rewrites.push(r)
      }
      const variants: Array<BundledVariant> = []
      for (const rewrite of rewrites) {
        let bytes: Uint8Array = input.bytes
        let variantInfo = info
        if (rewrite !== null) {
          const rewritten = rewriteModule(input.bytes, CompileVariant.rewriteOptions(rewrite))
          if (!rewritten.ok) {
            return yield* new BundleBuildError({
              module: label,
              reason: `rewrite ${variantKey(verification.hash, rewrite)} failed: ${rewritten.error.reason} at byte ${rewritten.error.offset}`
            })
          }
          bytes = rewritten.value.bytes
          const reread = readModule(bytes)
          if (!reread.ok)
            return yield* new BundleBuildError({
              module: label,
              reason: `rewritten module is invalid: ${reread.error.reason}`
            })
          variantInfo = reread.value
        }
        const digest = yield* codeDigest(bytes)
        const key = variantKey(verification.hash, rewrite)
        const same = variants.findIndex((v) => v.digest === digest)
        if (same >= 0) {
          const v = variants[same]!
          variants[same] = { ...v, aliases: [...v.aliases, key] }
          continue
        }
        const file = `wasm/${digest}.wasm`
        files.push({ path: file, kind: "wasm", bytes })
        variants.push({
          key,
          aliases: [],
          rewrite,
          file,
          digest,
          sha256: yield* sha256Hex(bytes),
          size: bytes.byteLength,
          ...externKinds(variantInfo)
        })
      }
      if (hashOf.has(input.name) || [...hashOf.values()].includes(verification.hash)) {
        return yield* new BundleBuildError({
          module: label,
          reason: `module ${verification.hash} is already in the bundle`
        })
      }
      const file = `modules/${verification.hash}.bin`
      files.push({ path: file, kind: "data", bytes: input.bytes })
      hashOf.set(input.name, verification.hash)
      modules.push({
        name: input.name,
        version: input.version,
        moduleHash: verification.hash,
        file,
        size: input.bytes.byteLength,
        signature:
          verification.keyId === undefined
            ? { status: "unsigned-allowed" }
            : { status: "verified", keyId: verification.keyId },
        exports: info.exports.map((e) => ({ name: e.name, type: e.type as ExternType })),
        imports: info.imports.map((i) => ({ module: i.module, name: i.name, type: i.type })),
        memory,
        variants
      })
    }
    const agents: Array<BundledAgent> = options.agents.map((a) => {
      const m = byName.get(a.module)!
      return {
        type: a.type,
        moduleHash: hashOf.get(a.module)!,
        name: m.name,
        version: m.version,
        memoryLimit: a.memoryLimit,
        fuel: a.fuel ?? null
      }
    })
    const manifest: BundleManifest = { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, limits, modules, agents }
    return { manifest, files }
  })
