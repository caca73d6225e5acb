/**
 * `BundleRegistry`: the precompiled modules a Worker's bundle provides,
 * checked against the bundle's manifest when the Worker starts.
 *
 * A Worker imports its variants as `WebAssembly.Module` objects (workerd
 * `wasm` modules / wrangler `CompiledWasm` rules) and the original signed
 * module bytes as data (workerd `data` modules), and hands them here with
 * the manifest (see `BundleManifest`). `make` checks, before any agent runs:
 *
 * - the manifest's shape and consistency (`ManifestInvalid`);
 * - every variant the manifest lists is in the bundle and is a
 *   `WebAssembly.Module` (`BundleFileMissing`, `BundleMismatch`);
 * - each variant's exports and imports, as the engine reports them
 *   (`WebAssembly.Module.exports()` / `.imports()`: names and kinds, in
 *   order), are the manifest's — a `.wasm` file swapped after the build is
 *   caught here (`BundleMismatch`); the bytes of a compiled module cannot be
 *   read back, so this structural check is what the run time can do, and the
 *   digest check happens at `compile` on the bytes the runtime passes;
 * - every original module's bytes hash to its `ModuleHash`
 *   (`BundleMismatch`), when the originals are given;
 * - no bundled module lacks a manifest entry (`BundleMismatch` "no manifest entry").
 *
 * Lookups are by `ModuleHash` (modules) and by variant digest (variants).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { type BundleError, BundleFileMissing, BundleMismatch } from "./BundleError.js"
import {
  type BundledAgent,
  type BundledModule,
  type BundledVariant,
  type BundleManifest,
  decodeManifest,
  type ExternKind
} from "./BundleManifest.js"
import { codeDigest } from "./internal/digest.js"

/** What a Worker's bundle provides. Paths are the manifest's `file` fields. */
export interface BundleContents {
  /** The manifest: a parsed JSON value, JSON text, or a `BundleManifest`. */
  readonly manifest: unknown
  /** Every variant's precompiled module, by file path (`wasm/<digest>.wasm`). */
  readonly modules: { readonly [file: string]: unknown }
  /** The original signed module bytes by file path (`modules/<hash>.bin`); optional. */
  readonly data?: { readonly [file: string]: ArrayBuffer | Uint8Array } | undefined
}

/** A bundled variant with its precompiled module. */
export interface RegisteredVariant {
  readonly module: BundledModule
  readonly variant: BundledVariant
  readonly compiled: WebAssembly.Module
}

/** The checked contents of a bundle. */
export interface BundleRegistry {
  readonly manifest: BundleManifest
  /** The bundled module with this `ModuleHash`. */
  readonly module: (moduleHash: string) => BundledModule | undefined
  /** The variant with this digest (see `BundleManifest` "Keys"). */
  readonly variant: (digest: string) => RegisteredVariant | undefined
  /** A declared agent type. */
  readonly agent: (type: string) => BundledAgent | undefined
  /** The original signed bytes of a module (a fresh copy), when the bundle carries them. */
  readonly originalBytes: (moduleHash: string) => Uint8Array | undefined
}

const describeKinds = (list: ReadonlyArray<ExternKind>): string =>
  list.map((e) => `${e.module === undefined ? "" : `${e.module}.`}${e.name}:${e.kind}`).join(", ")

const sameKinds = (a: ReadonlyArray<ExternKind>, b: ReadonlyArray<ExternKind>): boolean =>
  a.length === b.length &&
  a.every((x, i) => {
    const y = b[i]!
    return x.name === y.name && x.kind === y.kind && (x.module ?? "") === (y.module ?? "")
  })

/** Checks a bundle's contents against its manifest and indexes them (see the module doc). */
export const make = (contents: BundleContents): Effect.Effect<BundleRegistry, BundleError> =>
  Effect.gen(function* () {
    const manifest = yield* decodeManifest(contents.manifest)
    const modules = new Map<string, BundledModule>()
    const variants = new Map<string, RegisteredVariant>()
    const originals = new Map<string, Uint8Array>()
    const listed = new Set<string>()
    for (const m of manifest.modules) {
      modules.set(m.moduleHash, m)
      for (const v of m.variants) {
        listed.add(v.file)
        const compiled = contents.modules[v.file]
        if (compiled === undefined) return yield* new BundleFileMissing({ file: v.file, what: `variant ${v.key}` })
        if (!(compiled instanceof WebAssembly.Module)) {
          return yield* new BundleMismatch({
            file: v.file,
            reason: "not a WebAssembly.Module (bundle it as a wasm / CompiledWasm module)"
          })
        }
        const exports: Array<ExternKind> = WebAssembly.Module.exports(compiled).map((e) => ({
          name: e.name,
          kind: e.kind
        }))
        const imports: Array<ExternKind> = WebAssembly.Module.imports(compiled).map((i) => ({
          module: i.module,
          name: i.name,
          kind: i.kind
        }))
        if (!sameKinds(exports, v.exports)) {
          return yield* new BundleMismatch({
            file: v.file,
            reason: `exports [${describeKinds(exports)}] are not the manifest's [${describeKinds(v.exports)}]`
          })
        }
        if (!sameKinds(imports, v.imports)) {
          return yield* new BundleMismatch({
            file: v.file,
            reason: `imports [${describeKinds(imports)}] are not the manifest's [${describeKinds(v.imports)}]`
          })
        }
        variants.set(v.digest, { module: m, variant: v, compiled })
      }
      if (contents.data !== undefined) {
        const raw = contents.data[m.file]
        if (raw === undefined)
          return yield* new BundleFileMissing({ file: m.file, what: `original bytes of ${m.name}@${m.version}` })
        const bytes = raw instanceof Uint8Array ? raw : new Uint8Array(raw)
        const digest = yield* codeDigest(bytes)
        if (digest !== m.moduleHash) {
          return yield* new BundleMismatch({
            file: m.file,
            reason: `its module hash is ${digest}, the manifest says ${m.moduleHash}`
          })
        }
        originals.set(m.moduleHash, bytes)
        listed.add(m.file)
      }
    }
    const unlisted = [...Object.keys(contents.modules), ...Object.keys(contents.data ?? {})].find((f) => !listed.has(f))
    if (unlisted !== undefined)
      return yield* new BundleMismatch({ file: unlisted, reason: "no manifest entry for this bundled file" })
    const agents = new Map(manifest.agents.map((a) => [a.type, a]))
    return {
      manifest,
      module: (hash) => modules.get(hash),
      variant: (digest) => variants.get(digest),
      agent: (type) => agents.get(type),
      originalBytes: (hash) => originals.get(hash)?.slice()
    }
  })
