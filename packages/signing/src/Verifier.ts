/**
 * Verifying module signatures, and `layer`: the ed25519 adapter of the
 * domain's `ModuleVerifier` port (spec Invariant 5 "Module Verification";
 * DESIGN.md "Module verification").
 *
 * `verifyModule` checks, in this order, and fails with `InvalidSignature`
 * whose `reason` starts with the word(s) in quotes:
 *
 * 1. the bytes are a well-formed sequence of sections — "malformed module at byte N: …";
 * 2. a signature exists: `metadata.signature` (detached, takes precedence) or
 *    exactly one embedded `agent-runtime.signature` section — "unsigned"
 *    (unless `allowUnsigned`), "multiple signature sections";
 * 3. the signature JSON is well formed (format v1, ed25519, lengths) — "malformed signature: …";
 * 4. its `hash` equals the recomputed `ModuleHash` — "tampered: …";
 * 5. its `keyId` is in the trust store — "untrusted key …";
 * 6. its name and version equal the metadata's — "metadata mismatch: …";
 * 7. the ed25519 signature (strict RFC 8032 §5.1.7) holds — "bad signature".
 *
 * It never throws: malformed input of any kind becomes `InvalidSignature`.
 *
 * @since 0.1.0
 */
import {
  type ModuleHash,
  ModuleVerifier,
  type Verification,
  type VerifyHints,
  InvalidSignature
} from "@agent-runtime/domain"
import { type CustomSection, customSections, removeCustomSections } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { verify } from "./internal/ed25519.js"
import { sha256Hex } from "./ModuleHash.js"
import { decodeSignature, type ModuleSignature, SIGNATURE_SECTION, signedMessage } from "./ModuleSignature.js"
import type { TrustStore } from "./TrustStore.js"

/** Settings of the verifier. */
export interface VerifierOptions {
  /** The keys whose signatures are accepted. */
  readonly trustStore: TrustStore
  /**
   * Accept modules that carry no signature at all (their `Verification.keyId`
   * is `undefined`). For development only; `false` by default. A module that
   * carries a *bad* signature is refused either way.
   */
  readonly allowUnsigned?: boolean | undefined
}

/** What the module claims to be: the `ModuleMetadata` fields verification reads. */
export interface VerificationSubject {
  readonly name: string
  readonly version: string
  /** A detached signature (`.sig` JSON bytes); when set, embedded signatures are ignored. */
  readonly signature?: Uint8Array | undefined
}

/** Where a module's signature was found, if anywhere. */
export type SignatureLookup =
  | { readonly _tag: "Unsigned" }
  | { readonly _tag: "Signed"; readonly source: "embedded" | "detached"; readonly signature: ModuleSignature }

/**
 * Finds and decodes a module's signature without checking it: the detached
 * one when given, else the embedded `agent-runtime.signature` section.
 * Fails with `InvalidSignature` (steps 1–3 of the module doc); `module` labels the error.
 */
export const readSignature = (
  bytes: Uint8Array,
  options: { readonly detached?: Uint8Array | undefined; readonly module?: string | undefined } = {}
): Effect.Effect<SignatureLookup, InvalidSignature> => {
  const module = options.module ?? "module"
  const fail = (reason: string) => Effect.fail(new InvalidSignature({ module, reason }))
  const sections = customSections(bytes)
  if (!sections.ok) return fail(`malformed module at byte ${sections.error.offset}: ${sections.error.reason}`)
  let payload: Uint8Array
  let source: "embedded" | "detached"
  if (options.detached !== undefined) {
    payload = options.detached
    source = "detached"
  } else {
    const found = sections.value.filter((s) => s.name === SIGNATURE_SECTION)
    const section = found[0]
    if (section === undefined) return Effect.succeed({ _tag: "Unsigned" })
    if (found.length > 1) return fail(`multiple signature sections (${found.length})`)
    payload = bytes.subarray(section.dataOffset, section.dataOffset + section.dataLength)
    source = "embedded"
  }
  const decoded = decodeSignature(payload)
  if (!decoded.ok) return fail(`malformed signature: ${decoded.reason}`)
  return Effect.succeed({ _tag: "Signed", source, signature: decoded.value })
}

/**
 * The bytes the `ModuleHash` covers: `bytes` themselves when they carry no
 * signature section, a view of the prefix when the signature sections are
 * the module's last sections (where `signModule` puts the one it embeds),
 * otherwise a copy without them (`removeCustomSections`). Only section
 * headers are walked; fails on malformed framing like `customSections`.
 */
const withoutSignatures = (
  bytes: Uint8Array
): ReturnType<typeof removeCustomSections> | { readonly ok: true; readonly value: Uint8Array } => {
  const sections = customSections(bytes)
  if (!sections.ok) return sections
  const signatures: Array<CustomSection> = sections.value.filter((s) => s.name === SIGNATURE_SECTION)
  if (signatures.length === 0) return { ok: true, value: bytes }
  let end = bytes.length
  for (let i = signatures.length - 1; i >= 0; i--) {
    const s = signatures[i] as CustomSection
    if (s.offset + s.length !== end) return removeCustomSections(bytes, SIGNATURE_SECTION)
    end = s.offset
  }
  return { ok: true, value: bytes.subarray(0, end) }
}

/**
 * Verifies that `bytes` were signed by a key of the trust store for
 * `subject.name` and `subject.version` (see the module doc for the checks and
 * reasons). Succeeds with the module's hash and the signing key's id.
 * `hints.sha256` (SHA-256 hex of `bytes` as given, `VerifyHints`) is taken as
 * the hash when `bytes` carry no signature section, instead of hashing again;
 * otherwise the bytes without their signature sections are hashed by
 * `hints.sha256HexNow` (the runtime's synchronous SHA-256, e.g. `node:crypto`)
 * when it answers, else by WebCrypto / JavaScript (`sha256Hex`).
 *
 * @example
 * ```ts
 * const { hash, keyId } = yield* verifyModule(bytes, { name: "counter", version: "1.0.0" }, { trustStore })
 * ```
 */
export const verifyModule = (
  bytes: Uint8Array,
  subject: VerificationSubject,
  options: VerifierOptions,
  hints?: VerifyHints
): Effect.Effect<Verification, InvalidSignature> =>
  Effect.gen(function* () {
    const module = `${subject.name}@${subject.version}`
    const fail = (reason: string) => new InvalidSignature({ module, reason })
    const lookup = yield* readSignature(bytes, { detached: subject.signature, module })
    const stripped = withoutSignatures(bytes)
    if (!stripped.ok) return yield* fail(`malformed module at byte ${stripped.error.offset}: ${stripped.error.reason}`)
    const hash = (
      stripped.value === bytes && hints?.sha256 !== undefined
        ? hints.sha256
        : (hints?.sha256HexNow?.(stripped.value) ?? (yield* sha256Hex(stripped.value)))
    ) as ModuleHash
    if (lookup._tag === "Unsigned") {
      if (options.allowUnsigned === true) return { hash, keyId: undefined }
      return yield* fail("unsigned")
    }
    const signature = lookup.signature
    if (signature.hash !== hash) {
      return yield* fail(`tampered: the module hash ${hash} is not the signed hash ${signature.hash}`)
    }
    const key = options.trustStore.get(signature.keyId)
    if (key === undefined) return yield* fail(`untrusted key ${signature.keyId}`)
    if (signature.name !== subject.name || signature.version !== subject.version) {
      return yield* fail(`metadata mismatch: signed as ${signature.name}@${signature.version}`)
    }
    if (!verify(signature.sig, signedMessage(signature.hash, signature.name, signature.version), key.publicKey)) {
      return yield* fail("bad signature")
    }
    return { hash, keyId: signature.keyId }
  })

/**
 * The `ModuleVerifier` port on ed25519 signatures and a trust store.
 * `allowUnsigned` defaults to `false`: unsigned modules fail with
 * `InvalidSignature` "unsigned". `trusts(keyId)` answers from the same
 * trust store (immutable, so an answer never changes for this layer; the
 * runtime's load cache consults it on every hit anyway).
 *
 * @example
 * ```ts
 * const VerifierLive = layer({ trustStore: TrustStore.empty.add(publicKey, "release") })
 * ```
 */
export const layer = (options: VerifierOptions): Layer.Layer<ModuleVerifier> =>
  Layer.succeed(ModuleVerifier, {
    verify: (bytes, metadata, hints) => verifyModule(bytes, metadata, options, hints),
    trusts: (keyId) => options.trustStore.has(keyId)
  })
