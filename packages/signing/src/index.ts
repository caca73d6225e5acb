/**
 * `@agent-runtime/signing` — ed25519 signatures for WebAssembly modules and a
 * trust store; `layer` provides the domain's `ModuleVerifier` port.
 *
 * Platform-free: no `node:*` imports (runs in Node, browsers and workerd).
 *
 * @since 0.1.0
 */
export * from "./KeyPair.js"
export * from "./ModuleHash.js"
export * from "./ModuleSignature.js"
export * from "./Signer.js"
export * from "./TrustStore.js"
export * from "./Verifier.js"
