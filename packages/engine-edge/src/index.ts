/**
 * `@agent-runtime/engine-edge` — the `WasmEngine` for Cloudflare Workers-style
 * edge runtimes (platform `Edge`): precompiled modules from a verified bundle
 * only (`BundleManifest`, `BundleBuilder`, `BundleRegistry`), a
 * `ModuleVerifier` over the bundle (`BundleVerifier`), and a key-value
 * `InstanceRepository` (`KvInstanceRepository`).
 *
 * @since 0.1.0
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
export * as EdgeEngine from "./EdgeEngine.js"
export * as EdgeInstance from "./EdgeInstance.js"
export * as KvInstanceRepository from "./KvInstanceRepository.js"
export type { KeyValueStore, KvListResult } from "./KvInstanceRepository.js"
