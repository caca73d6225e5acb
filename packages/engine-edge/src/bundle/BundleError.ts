/**
 * Errors of an edge bundle: building it (`BundleBuilder`), reading its
 * manifest, and checking the Worker's bundled modules against the manifest
 * when the registry is made (`BundleRegistry.make`). They are
 * `Schema.TaggedError` classes, so a Worker can report them as JSON.
 *
 * The engine itself fails with the port's `CompileError` (the `WasmEngine`
 * port fixes its error channel); its `reason` starts with one of the
 * `EdgeCompileReason` codes so callers (the Worker's HTTP mapping) can tell
 * the edge's cases apart — see `edgeReasonOf`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** The manifest is not valid JSON, not this format/version, or inconsistent (duplicates, dangling agents). */
export class ManifestInvalid extends Schema.TaggedError<ManifestInvalid>()("ManifestInvalid", {
  reason: Schema.String
}) {
  override get message() {
    return `invalid bundle manifest: ${this.reason}`
  }
}

/** A file the manifest lists is not in the bundle (a variant's `WebAssembly.Module`, a module's original bytes). */
export class BundleFileMissing extends Schema.TaggedError<BundleFileMissing>()("BundleFileMissing", {
  file: Schema.String,
  what: Schema.String
}) {
  override get message() {
    return `bundle file ${this.file} (${this.what}) is listed in the manifest but missing from the bundle`
  }
}

/** A bundled file does not match its manifest entry (digest, exports, imports). */
export class BundleMismatch extends Schema.TaggedError<BundleMismatch>()("BundleMismatch", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `bundle file ${this.file} does not match the manifest: ${this.reason}`
  }
}

/** Building a bundle failed: a module could not be verified, read or rewritten, or the config is invalid. */
export class BundleBuildError extends Schema.TaggedError<BundleBuildError>()("BundleBuildError", {
  module: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `bundle: ${this.module}: ${this.reason}`
  }
}

/** Any error of making a registry from a bundle. */
export type BundleError = ManifestInvalid | BundleFileMissing | BundleMismatch

/**
 * The codes that start the `reason` of the edge engine's `CompileError`s:
 *
 * - `edge:not-bundled` — raw bytes of a module that is not in the bundle
 *   (runtime compilation is forbidden on the edge);
 * - `edge:no-variant` — a bundled module, but bytes whose digest matches no
 *   bundled variant (the runtime's rewrite parameters — memory cap, fuel,
 *   state exports — differ from the bundle's, or the bytes were changed);
 * - `edge:foreign-variant` — the bytes are a variant of ANOTHER bundled
 *   module than the hash the runtime asked for.
 */
export type EdgeCompileReason = "edge:not-bundled" | "edge:no-variant" | "edge:foreign-variant"

/** The `EdgeCompileReason` a message (of a `CompileError`, or an error wrapping one) carries, if any. */
export const edgeReasonOf = (message: string): EdgeCompileReason | undefined => {
  const m = /\[(edge:(?:not-bundled|no-variant|foreign-variant))\]/.exec(message)
  return m === null ? undefined : (m[1] as EdgeCompileReason)
}
