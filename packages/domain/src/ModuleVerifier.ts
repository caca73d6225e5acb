/**
 * The `ModuleVerifier` port: the Security context's anti-corruption layer for
 * module signatures (spec Invariant 5 "Module Verification"; DESIGN.md
 * "Module verification").
 *
 * `verify` computes the module's `ModuleHash` (SHA-256 of the bytes with the
 * signature custom section removed) and checks that a trusted key signed
 * hash + name + version. Unsigned, tampered, wrong-key or wrong-metadata
 * modules fail with `InvalidSignature` — unless the adapter was explicitly
 * configured to allow unsigned modules (development only).
 *
 * Adapter: `@agent-runtime/signing` (ed25519).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { ModuleHash } from "./Ids.js"
import type { ModuleMetadata } from "./ModuleMetadata.js"
import type { InvalidSignature } from "./RuntimeError.js"

/** The outcome of a successful verification. */
export interface Verification {
  /** SHA-256 (hex) of the module bytes without the signature section. */
  readonly hash: ModuleHash
  /** Id of the trusted key that signed it; `undefined` when unsigned modules are allowed and this one is unsigned. */
  readonly keyId: string | undefined
}

export interface ModuleVerifierShape {
  readonly verify: (bytes: Uint8Array, metadata: ModuleMetadata) => Effect.Effect<Verification, InvalidSignature>
}

/** The `ModuleVerifier` service key. */
export class ModuleVerifier extends Context.Service<ModuleVerifier, ModuleVerifierShape>()(
  "@agent-runtime/domain/ModuleVerifier"
) {}
