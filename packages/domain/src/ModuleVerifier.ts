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

/** What the caller of `verify` already knows about the bytes, so the verifier need not compute it again. */
export interface VerifyHints {
  /**
   * Lowercase hex SHA-256 (64 chars) of the bytes **as given** (signature
   * sections included). A verifier may take it as the `ModuleHash` when the
   * bytes carry no signature section (the hash of the bytes without it is
   * then the same), instead of hashing them a second time.
   */
  readonly sha256?: string | undefined
  /**
   * The runtime's synchronous SHA-256 (lowercase hex, 64 chars) for other
   * bytes the verifier must hash, e.g. the module without its signature
   * sections: the platform's own where one is injected
   * (`PlatformServices.sha256Hex`, e.g. `node:crypto`), else JavaScript for
   * small inputs. `undefined` from it: the verifier hashes by its own means.
   * The digest is the same by every route (FIPS 180-4).
   */
  readonly sha256HexNow?: ((bytes: Uint8Array) => string | undefined) | undefined
}

export interface ModuleVerifierShape {
  /**
   * Checks `bytes` against `metadata` (name, version, detached signature)
   * and the trusted keys. Fails with `InvalidSignature`. `hints` are optional
   * facts the caller computed already (`VerifyHints`).
   */
  readonly verify: (
    bytes: Uint8Array,
    metadata: ModuleMetadata,
    hints?: VerifyHints
  ) => Effect.Effect<Verification, InvalidSignature>
  /**
   * Whether the key `keyId` is trusted now (optional). `loadModule` keeps a
   * successful verification with its cache entry and serves a second load of
   * the same bytes and metadata without calling `verify`; before doing so it
   * asks `trusts(keyId)`, so a key removed from a mutable trust store since
   * is not served from the cache (the load then runs `verify`, which refuses
   * it). A verifier without `trusts` promises that its trust does not change
   * while the runtime using it lives (the ed25519 adapter's `TrustStore` is
   * immutable: a new store means a new layer and a new runtime). Must be
   * cheap (a set lookup): it runs on every cache hit.
   */
  readonly trusts?: ((keyId: string) => boolean) | undefined
}

/** The `ModuleVerifier` service key. */
export class ModuleVerifier extends Context.Service<ModuleVerifier, ModuleVerifierShape>()(
  "@agent-runtime/domain/ModuleVerifier"
) {}
