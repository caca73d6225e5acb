/**
 * `@agent-runtime/engine-edge` — the `WasmEngine` for Cloudflare Workers-style
 * edge runtimes (platform `Edge`): it instantiates only the precompiled
 * modules of a verified bundle (`EdgeEngine`). The bundle itself — build-time
 * tooling, manifest, the run-time registry and verifier — is the entry
 * `@agent-runtime/engine-edge/bundle`; the key-value `InstanceRepository` is
 * `@agent-runtime/repository-kv`.
 *
 * @since 0.1.0
 */
export * as EdgeEngine from "./EdgeEngine.js"
