/**
 * Signing modules: `signModule` embeds a signature in the module's
 * `agent-runtime.signature` custom section; `signDetached` returns the same
 * signature as `.sig` JSON bytes. The format is described in
 * `ModuleSignature.ts` and the package README.
 *
 * @since 0.1.0
 */
import { appendCustomSection, removeCustomSections } from "@agent-runtime/wasm-binary"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { publicKeyOf, SECRET_KEY_LENGTH, sign } from "./internal/ed25519.js"
import { keyIdOf } from "./KeyPair.js"
import { sha256Hex } from "./ModuleHash.js"
import {
  checkLabel,
  encodeSignature,
  type ModuleSignature,
  SIGNATURE_SECTION,
  signedMessage
} from "./ModuleSignature.js"

/**
 * A module could not be signed: malformed module bytes (`offset` is the byte
 * offset of the problem, WebAssembly core spec §5), a secret key that is not
 * 32 bytes, or an empty name/version or one containing a newline.
 */
export class SigningError extends Data.TaggedError("SigningError")<{
  readonly reason: string
  readonly offset?: number | undefined
}> {
  override get message() {
    return this.offset === undefined
      ? `cannot sign: ${this.reason}`
      : `cannot sign: ${this.reason} at byte ${this.offset}`
  }
}

/** What a signature vouches for besides the bytes: `ModuleMetadata.name` and `.version`. */
export interface SignatureSubject {
  readonly name: string
  readonly version: string
}

const stripSignatures = (bytes: Uint8Array): Effect.Effect<Uint8Array, SigningError> => {
  const stripped = removeCustomSections(bytes, SIGNATURE_SECTION)
  return stripped.ok
    ? Effect.succeed(stripped.value)
    : Effect.fail(
        new SigningError({ reason: `malformed module: ${stripped.error.reason}`, offset: stripped.error.offset })
      )
}

/**
 * The signature of `bytes` for `subject` by `secretKey` (32-byte ed25519 seed).
 * Signatures already embedded in `bytes` are ignored (they are not part of the hash).
 * Fails with `SigningError` (see its doc).
 */
export const createSignature = (
  bytes: Uint8Array,
  subject: SignatureSubject,
  secretKey: Uint8Array
): Effect.Effect<ModuleSignature, SigningError> =>
  Effect.gen(function* () {
    const problem = checkLabel("name", subject.name) ?? checkLabel("version", subject.version)
    if (problem !== undefined) return yield* new SigningError({ reason: problem })
    const publicKey = publicKeyOf(secretKey)
    if (publicKey === undefined) {
      return yield* new SigningError({
        reason: `secret key must be ${SECRET_KEY_LENGTH} bytes, got ${secretKey.length}`
      })
    }
    const stripped = yield* stripSignatures(bytes)
    const hash = yield* sha256Hex(stripped)
    return {
      v: 1,
      alg: "ed25519",
      keyId: keyIdOf(publicKey),
      name: subject.name,
      version: subject.version,
      hash,
      sig: sign(signedMessage(hash, subject.name, subject.version), secretKey)
    } satisfies ModuleSignature
  })

/**
 * Signs a module and embeds the signature: returns the module bytes with any
 * existing `agent-runtime.signature` sections removed and one new such custom
 * section appended at the end. The result is still a valid module (custom
 * sections are ignored by engines, WebAssembly core spec §5.5.3) and has the
 * same `moduleHash` as the input.
 *
 * Fails with `SigningError` on malformed module bytes (with the byte offset),
 * a wrong secret key length, or an unusable name/version.
 *
 * @example
 * ```ts
 * const signed = yield* signModule(wasm, { name: "counter", version: "1.0.0" }, keyPair.secretKey)
 * ```
 */
export const signModule = (
  bytes: Uint8Array,
  subject: SignatureSubject,
  secretKey: Uint8Array
): Effect.Effect<Uint8Array, SigningError> =>
  Effect.gen(function* () {
    const signature = yield* createSignature(bytes, subject, secretKey)
    const stripped = yield* stripSignatures(bytes)
    const signed = appendCustomSection(stripped, SIGNATURE_SECTION, encodeSignature(signature))
    if (!signed.ok) {
      return yield* new SigningError({
        reason: `malformed module: ${signed.error.reason}`,
        offset: signed.error.offset
      })
    }
    return signed.value
  })

/**
 * Signs a module without changing it: returns the signature JSON as UTF-8
 * bytes (write it to a `.sig` file; pass it as `ModuleMetadata.signature`).
 * Fails like `signModule`.
 */
export const signDetached = (
  bytes: Uint8Array,
  subject: SignatureSubject,
  secretKey: Uint8Array
): Effect.Effect<Uint8Array, SigningError> => Effect.map(createSignature(bytes, subject, secretKey), encodeSignature)
