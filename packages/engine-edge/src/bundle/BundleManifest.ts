/**
 * `BundleManifest`: what an edge bundle holds and how the edge engine finds a
 * precompiled module in it (issue 6 "Edge platform"; DESIGN.md "Platforms":
 * Edge — runtime compilation is forbidden there).
 *
 * Edge runtimes (Cloudflare Workers / workerd) refuse to generate code at run
 * time: `WebAssembly.compile`, `new WebAssembly.Module(bytes)` and
 * `WebAssembly.instantiate(bytes)` fail with "Wasm code generation disallowed
 * by embedder". Modules must ship inside the Worker as `WebAssembly.Module`
 * objects (workerd `wasm` modules, wrangler `CompiledWasm` rules). So the work
 * the runtime does at spawn elsewhere — verify the signature, rewrite the
 * module (memory cap, fuel metering, hidden state exports) and compile —
 * happens at BUILD time (`agent-runtime bundle`, see `BundleBuilder.ts`), and
 * this manifest records the result.
 *
 * ## Keys
 *
 * - A bundled module is keyed by its `ModuleHash` (`moduleHash`): lowercase
 *   hex SHA-256 of the ORIGINAL signed module without its
 *   `agent-runtime.signature` custom section (the hash the domain computes at
 *   `loadModule`).
 * - Each module has one or more *variants*: the module as loaded
 *   (`rewrite: null`) and the rewritten modules for the agent configs the
 *   bundle declares. A variant is keyed by its `digest`: SHA-256 (hex) of the
 *   variant's bytes without `agent-runtime.signature` sections — the same
 *   convention as `ModuleHash`, so the unrewritten variant's digest IS the
 *   module hash, and a module re-signed by another key (or loaded unsigned)
 *   still finds its variants. At spawn the domain rewrites the loaded bytes
 *   itself (`rewriteModule` is deterministic) and passes them to
 *   `WasmEngine.compile(bytes, hash)`; the engine computes their digest and
 *   returns the variant's bundled `WebAssembly.Module`. Equal digests mean the
 *   runtime's rewrite parameters (memory cap in pages, initial fuel, state
 *   exports) are the bundle's — there is no other way to get those bytes.
 * - `key` repeats the domain's compile-cache key of the variant
 *   (`<hash>|cap=<pages|->|fuel=<n|->|<state|->`, see the domain's
 *   `AgentRuntime` `rewriteFor`) for diagnostics: it is what a missing
 *   variant's error lists.
 *
 * ## Shapes and units
 *
 * Sizes in bytes; memory in WebAssembly pages of 64 KiB (`maxMemoryPages`)
 * or bytes (`memoryLimit`); fuel in metering units (`@agent-runtime/wasm-binary`
 * `instrumentFuel`). Files are paths relative to the bundle directory.
 *
 * @since 0.1.0
 */
import type { ExternType, MemoryType, ModuleInfo } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { ManifestInvalid } from "./BundleError.js"
import { CompileVariant } from "@agent-runtime/domain"

/** The manifest's `format` field. */
export const MANIFEST_FORMAT = "agent-runtime/edge-bundle"
/** The manifest's format version this package reads and writes. */
export const MANIFEST_VERSION = 1

/** The rewrite applied to a variant (`@agent-runtime/wasm-binary` `rewriteModule` options). */
export interface RewriteParams {
  /** Memory 0's maximum, in pages of 64 KiB; `null` when not capped (no memory, or the cap is off). */
  readonly maxMemoryPages: number | null
  /** Initial value of the fuel counter (the agent's `AgentConfig.fuel`), in fuel units; `null` when not metered. */
  readonly fuel: number | null
  /** Internal mutable state exported for complete snapshots. */
  readonly exportState: boolean
}

/** An export or import as `WebAssembly.Module.exports()` / `.imports()` report it (kinds only). */
export interface ExternKind {
  readonly module?: string | undefined
  readonly name: string
  readonly kind: string
}

/** One precompiled variant of a module. */
export interface BundledVariant {
  /** The domain's compile-cache key of this variant (diagnostics). */
  readonly key: string
  /**
   * Other keys whose rewrite gives byte-identical code (e.g. a memory cap
   * above the module's own maximum changes nothing), so they share this file.
   */
  readonly aliases: ReadonlyArray<string>
  /** The rewrite, or `null` for the module as loaded. */
  readonly rewrite: RewriteParams | null
  /** The `.wasm` file (a workerd `wasm` module / wrangler `CompiledWasm`), relative to the bundle. */
  readonly file: string
  /** SHA-256 (hex) of the variant's bytes without `agent-runtime.signature` sections: the lookup key. */
  readonly digest: string
  /** SHA-256 (hex) of the file's exact bytes. */
  readonly sha256: string
  /** Size of the file in bytes. */
  readonly size: number
  /** What `WebAssembly.Module.exports()` of this variant must report (hidden exports included). */
  readonly exports: ReadonlyArray<ExternKind>
  /** What `WebAssembly.Module.imports()` of this variant must report. */
  readonly imports: ReadonlyArray<ExternKind>
}

/** How the module's signature was checked at build time. */
export type SignatureStatus =
  | { readonly status: "verified"; readonly keyId: string }
  | { readonly status: "unsigned-allowed" }

/** One module of the bundle, with its variants. */
export interface BundledModule {
  readonly name: string
  readonly version: string
  /** `ModuleHash` of the original signed module (64 hex chars). */
  readonly moduleHash: string
  /** The original signed module bytes (a workerd `data` module), relative to the bundle. */
  readonly file: string
  /** Size of the original module in bytes. */
  readonly size: number
  readonly signature: SignatureStatus
  /** Exports with their full types (from the binary, `@agent-runtime/wasm-binary`). */
  readonly exports: ReadonlyArray<{ readonly name: string; readonly type: ExternType }>
  /** Imports with their full types. */
  readonly imports: ReadonlyArray<{ readonly module: string; readonly name: string; readonly type: ExternType }>
  /** Memory 0 (defined or imported), or `null`. */
  readonly memory: MemoryType | null
  readonly variants: ReadonlyArray<BundledVariant>
}

/** An agent type the bundle declares: which module, and the config its variant was made for. */
export interface BundledAgent {
  /** The agent type (e.g. `"counter"`), unique in the bundle. */
  readonly type: string
  readonly moduleHash: string
  readonly name: string
  readonly version: string
  /** The memory limit the variant is capped to, in bytes (1 MiB ≤ limit ≤ 512 MiB). */
  readonly memoryLimit: number
  /** Fuel per call (fuel units), when metered. */
  readonly fuel: number | null
}

/** The bundle's manifest (`manifest.json`). */
export interface BundleManifest {
  readonly format: typeof MANIFEST_FORMAT
  readonly version: typeof MANIFEST_VERSION
  /**
   * The runtime's `limits` settings the variants were made for (the domain's
   * `RuntimeSettings.limits`): the Worker must run with the same ones, or no
   * rewritten variant will match.
   */
  readonly limits: { readonly memoryCap: boolean; readonly exportState: boolean }
  readonly modules: ReadonlyArray<BundledModule>
  readonly agents: ReadonlyArray<BundledAgent>
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

const Hex64 = Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/))
const NonNegInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

const ExternKindSchema = Schema.Struct({
  module: Schema.optional(Schema.String),
  name: Schema.String,
  kind: Schema.String
})

const VariantSchema = Schema.Struct({
  key: Schema.String,
  aliases: Schema.Array(Schema.String),
  rewrite: Schema.NullOr(
    Schema.Struct({
      maxMemoryPages: Schema.NullOr(NonNegInt),
      fuel: Schema.NullOr(NonNegInt),
      exportState: Schema.Boolean
    })
  ),
  file: Schema.String,
  digest: Hex64,
  sha256: Hex64,
  size: NonNegInt,
  exports: Schema.Array(ExternKindSchema),
  imports: Schema.Array(ExternKindSchema)
})

const ModuleSchema = Schema.Struct({
  name: Schema.String,
  version: Schema.String,
  moduleHash: Hex64,
  file: Schema.String,
  size: NonNegInt,
  signature: Schema.Union([
    Schema.Struct({ status: Schema.Literal("verified"), keyId: Schema.String }),
    Schema.Struct({ status: Schema.Literal("unsigned-allowed") })
  ]),
  exports: Schema.Array(Schema.Struct({ name: Schema.String, type: Schema.Unknown })),
  imports: Schema.Array(Schema.Struct({ module: Schema.String, name: Schema.String, type: Schema.Unknown })),
  memory: Schema.Unknown,
  variants: Schema.Array(VariantSchema)
})

const AgentSchema = Schema.Struct({
  type: Schema.String,
  moduleHash: Hex64,
  name: Schema.String,
  version: Schema.String,
  memoryLimit: NonNegInt,
  fuel: Schema.NullOr(NonNegInt)
})

const ManifestSchema = Schema.Struct({
  format: Schema.Literal(MANIFEST_FORMAT),
  version: Schema.Literal(MANIFEST_VERSION),
  limits: Schema.Struct({ memoryCap: Schema.Boolean, exportState: Schema.Boolean }),
  modules: Schema.Array(ModuleSchema),
  agents: Schema.Array(AgentSchema)
})

/**
 * Reads a manifest (a parsed JSON value or JSON text). Checks the shape, the
 * format and version, that module hashes and variant digests are unique, and
 * that every agent names a bundled module. Fails with `ManifestInvalid { reason }`.
 */
export const decodeManifest = (input: unknown): Effect.Effect<BundleManifest, ManifestInvalid> =>
  Effect.gen(function* () {
    let value = input
    if (typeof input === "string") {
      value = yield* Effect.try({
        try: () => JSON.parse(input) as unknown,
        catch: () => new ManifestInvalid({ reason: "manifest is not valid JSON" })
      })
    }
    const decoded = yield* Effect.mapError(
      Schema.decodeUnknownEffect(ManifestSchema)(value),
      (e) =>
        new ManifestInvalid({
          reason: `manifest does not match format ${MANIFEST_FORMAT} v${MANIFEST_VERSION}: ${e.message}`
        })
    )
    const manifest = decoded as unknown as BundleManifest
    const hashes = new Set<string>()
    const digests = new Set<string>()
    for (const m of manifest.modules) {
      if (hashes.has(m.moduleHash))
        return yield* new ManifestInvalid({ reason: `module ${m.moduleHash} is listed twice` })
      hashes.add(m.moduleHash)
      for (const v of m.variants) {
        if (digests.has(v.digest))
          return yield* new ManifestInvalid({ reason: `variant digest ${v.digest} is listed twice` })
        digests.add(v.digest)
      }
    }
    const types = new Set<string>()
    for (const a of manifest.agents) {
      if (types.has(a.type)) return yield* new ManifestInvalid({ reason: `agent type ${a.type} is declared twice` })
      types.add(a.type)
      if (!hashes.has(a.moduleHash)) {
        return yield* new ManifestInvalid({
          reason: `agent type ${a.type} names module ${a.moduleHash}, which is not bundled`
        })
      }
    }
    return manifest
  })

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/** Name of the signature custom section (`@agent-runtime/signing` `SIGNATURE_SECTION`; duplicated: adapters do not import each other). */
export const SIGNATURE_SECTION = "agent-runtime.signature"

/** The domain's compile-cache key of a variant (`CompileVariant.variantKey`). */
export const variantKey = (moduleHash: string, rewrite: RewriteParams | null): string =>
  CompileVariant.variantKey(moduleHash, rewrite)

/**
 * Whether the budget caps something of `module`: a memory or any table,
 * defined or imported (a table is capped from the same budget as memory,
 * issue 12 item 1) — the domain's rule at spawn (`Modules.rewriteFor`).
 */
export const hasBudgetedStorage = (module: Pick<ModuleInfo, "imports" | "memories" | "tables">): boolean =>
  module.memories.length > 0 ||
  module.tables.length > 0 ||
  module.imports.some((i) => i.type.kind === "memory" || i.type.kind === "table")

/**
 * The rewrite the domain applies at spawn for an agent of `memoryLimit`
 * bytes and `fuel` units on `module` (its memory and tables capped to the
 * budget when `limits.memoryCap`, see `hasBudgetedStorage`), under the
 * runtime's `limits` — `null` when it uses the module as loaded. The domain's
 * own function (`CompileVariant.variantParams`), so build-time and run-time
 * rewrites cannot drift apart (the edge engine has `capabilities.snapshots`).
 */
export const rewriteFor = (
  module: Pick<ModuleInfo, "imports" | "memories" | "tables">,
  agent: { readonly memoryLimit: number; readonly fuel?: number | null | undefined },
  limits: BundleManifest["limits"]
): RewriteParams | null =>
  CompileVariant.variantParams({
    hasMemory: hasBudgetedStorage(module),
    memoryLimit: agent.memoryLimit,
    fuel: agent.fuel,
    memoryCap: limits.memoryCap,
    exportState: limits.exportState
  })
