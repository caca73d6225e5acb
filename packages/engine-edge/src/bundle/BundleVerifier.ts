/**
 * `BundleVerifier`: the domain's `ModuleVerifier` port for a Worker whose
 * modules were verified at build time (`agent-runtime bundle` ran
 * `@agent-runtime/signing` `verifyModule` with a trust store and recorded the
 * result in the manifest, spec Invariant 5 "Module Verification").
 *
 * `verify(bytes, metadata)` computes the bytes' `ModuleHash` (SHA-256 without
 * the `agent-runtime.signature` section) and accepts them only when the
 * bundle holds a module with that hash, for the same name and version; the
 * `Verification.keyId` is the key the build verified (`undefined` for a
 * module the build admitted unsigned). So the edge loads nothing the build
 * did not verify, without ed25519 work on every cold start. A Worker that
 * wants both checks can use `@agent-runtime/signing`'s `layer` instead: it
 * is platform-free and runs in workerd too.
 *
 * Errors: `InvalidSignature` "not in the bundle", "metadata mismatch".
 *
 * @since 0.1.0
 */
import { InvalidSignature, type ModuleHash, ModuleVerifier, type ModuleVerifierShape } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { BundleRegistry } from "./BundleRegistry.js"
import { codeDigest } from "./internal/digest.js"

/** The verifier over a bundle registry. */
export const make = (registry: BundleRegistry): ModuleVerifierShape => ({
  verify: (bytes, metadata) =>
    Effect.gen(function* () {
      const label = `${metadata.name}@${metadata.version}`
      const hash = yield* codeDigest(bytes)
      const bundled = registry.module(hash)
      if (bundled === undefined) {
        return yield* new InvalidSignature({
          module: label,
          reason: `not in the bundle (module hash ${hash}): only modules verified by \`agent-runtime bundle\` load on the edge`
        })
      }
      if (bundled.name !== metadata.name || bundled.version !== metadata.version) {
        return yield* new InvalidSignature({
          module: label,
          reason: `metadata mismatch: bundled as ${bundled.name}@${bundled.version}`
        })
      }
      return {
        hash: hash as ModuleHash,
        keyId: bundled.signature.status === "verified" ? bundled.signature.keyId : undefined
      }
    })
})

/** The `ModuleVerifier` layer over a bundle registry. */
export const layer = (registry: BundleRegistry): Layer.Layer<ModuleVerifier> =>
  Layer.succeed(ModuleVerifier, make(registry))
