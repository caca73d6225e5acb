/**
 * `@agent-runtime/engine-edge/bundle` — the edge bundle: built and verified
 * at build time by `agent-runtime bundle` (`BundleBuilder`: signature check,
 * memory cap / fuel / state-export rewrites per agent config, the
 * `BundleManifest`), and read at run time by the Worker (`BundleRegistry`:
 * the manifest checked against the precompiled `WebAssembly.Module`s, looked
 * up by module hash and variant digest; `BundleVerifier`: the
 * `ModuleVerifier` over the build-time verdicts). Errors: `BundleError`
 * (`ManifestInvalid`, `BundleFileMissing`, `BundleMismatch`),
 * `BundleBuildError`; `edgeReasonOf` tells the edge engine's `CompileError`s
 * apart.
 *
 * @since 0.2.0
 */
export * from "./BundleError.js"
export * as BundleBuilder from "./BundleBuilder.js"
export type { Bundle, BundleAgentInput, BundleFile, BuildBundleOptions, BundleModuleInput } from "./BundleBuilder.js"
export * as BundleManifests from "./BundleManifest.js"
export type {
  BundledAgent,
  BundledModule,
  BundledVariant,
  BundleManifest,
  ExternKind,
  RewriteParams,
  SignatureStatus
} from "./BundleManifest.js"
export * as BundleRegistry from "./BundleRegistry.js"
export type { BundleContents, RegisteredVariant } from "./BundleRegistry.js"
export * as BundleVerifier from "./BundleVerifier.js"
