/**
 * `@agent-runtime/signing/test-keys` — the project's TEST-ONLY signing key.
 *
 * The fixture agents (`packages/agents`) and the swarm demo are signed with
 * this key so that tests and demos exercise real signature verification. The
 * secret key is committed to the repository
 * (`packages/signing/test-keys/test-only-ed25519.json`): anyone can sign with
 * it. NEVER add it to a production trust store.
 *
 * @since 0.1.0
 */
import { fromHex } from "./internal/encoding.js"
import type { KeyPair } from "./KeyPair.js"
import { TrustStore } from "./TrustStore.js"

/** The warning stored with the key. */
export const TEST_ONLY_WARNING = "TEST ONLY — never trust in production"

/** The key in its JSON form; identical to `test-keys/test-only-ed25519.json` (a test checks it). */
export const testOnlyKeyJson = {
  warning: TEST_ONLY_WARNING,
  keyId: "8031f4ca87ca532b",
  publicKey: "6ddece3af6c8101b541a97ba67e304ac6c3f3c9870054bbee71ec99c30a9668e",
  secretKey: "edb3dd00ed2de893234181e75f0c7b63c51375ebac1cf2239d95658a41a60da5"
} as const

/** The TEST-ONLY key pair (32-byte secret key seed and public key). */
export const testOnlyKeyPair: KeyPair = {
  keyId: testOnlyKeyJson.keyId,
  publicKey: fromHex(testOnlyKeyJson.publicKey)!,
  secretKey: fromHex(testOnlyKeyJson.secretKey)!
}

/** A trust store holding only the TEST-ONLY public key (label "test-only"). */
export const testOnlyTrustStore = (): TrustStore => TrustStore.empty.add(testOnlyKeyPair.publicKey, "test-only")
