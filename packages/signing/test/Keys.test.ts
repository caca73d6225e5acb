import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  decodeKeyPair,
  decodePublicKey,
  encodeKeyPair,
  encodePublicKey,
  generateKeyPair,
  keyIdOf,
  keyPairFromSecretKey,
  moduleHash,
  sha256Hex,
  signModule,
  TrustStore,
  verifyModule
} from "../src/index.js"
import { TEST_ONLY_WARNING, testOnlyKeyJson, testOnlyKeyPair, testOnlyTrustStore } from "../src/TestKeys.js"
import committed from "../test-keys/test-only-ed25519.json" with { type: "json" }
import { addModule, utf8 } from "./fixtures.js"

describe("KeyPair", () => {
  it("generateKeyPair gives 32-byte keys and a 16-hex key id of SHA-256(publicKey)", () => {
    const kp = generateKeyPair()
    expect(kp.publicKey).toHaveLength(32)
    expect(kp.secretKey).toHaveLength(32)
    expect(kp.keyId).toMatch(/^[0-9a-f]{16}$/)
    expect(kp.keyId).toBe(keyIdOf(kp.publicKey))
    expect(generateKeyPair().keyId).not.toBe(kp.keyId)
  })

  it.effect("key ids are the prefix of the SHA-256 of the public key", () =>
    Effect.gen(function* () {
      const kp = generateKeyPair()
      expect((yield* sha256Hex(kp.publicKey)).slice(0, 16)).toBe(kp.keyId)
    })
  )

  it.effect("key pair JSON round trips and is checked", () =>
    Effect.gen(function* () {
      const kp = generateKeyPair()
      const json = encodeKeyPair(kp)
      expect(json.publicKey).toMatch(/^[0-9a-f]{64}$/)
      expect(yield* decodeKeyPair(JSON.parse(JSON.stringify(json)))).toEqual(kp)
      expect(yield* decodeKeyPair({ secretKey: json.secretKey })).toEqual(kp)
      const other = generateKeyPair()
      const mismatch = yield* Effect.flip(decodeKeyPair({ ...json, publicKey: encodeKeyPair(other).publicKey }))
      expect(mismatch.reason).toMatch(/does not match/)
      expect((yield* Effect.flip(decodeKeyPair({ ...json, keyId: "0000000000000000" }))).reason).toMatch(/keyId/)
      expect((yield* Effect.flip(decodeKeyPair({ secretKey: "zz" }))).reason).toMatch(/secretKey/)
      expect((yield* Effect.flip(decodeKeyPair("nope"))).reason).toMatch(/object/)
      expect(yield* decodePublicKey(encodePublicKey(kp))).toEqual({ keyId: kp.keyId, publicKey: kp.publicKey })
      expect((yield* Effect.flip(decodePublicKey({ publicKey: json.publicKey.slice(2) }))).reason).toMatch(/64 hex/)
    })
  )

  it("keyPairFromSecretKey throws a RangeError on a wrong length", () => {
    expect(() => keyPairFromSecretKey(new Uint8Array(16))).toThrow(RangeError)
  })
})

describe("TrustStore", () => {
  const a = generateKeyPair()
  const b = generateKeyPair()

  it("adds, gets, removes keys by id, with labels, immutably", () => {
    const store = TrustStore.empty.add(a.publicKey, "alice").add(b.publicKey)
    expect(store.size).toBe(2)
    expect(store.get(a.keyId)).toEqual({ keyId: a.keyId, publicKey: a.publicKey, label: "alice" })
    expect(store.get(b.keyId)?.label).toBeUndefined()
    expect(store.has(b.keyId)).toBe(true)
    const without = store.remove(a.keyId)
    expect(without.has(a.keyId)).toBe(false)
    expect(store.has(a.keyId)).toBe(true)
    expect(without.remove("ffffffffffffffff")).toBe(without)
    expect(store.add(a.publicKey, "renamed").get(a.keyId)?.label).toBe("renamed")
    expect(store.add(a.publicKey, "renamed").size).toBe(2)
    expect(TrustStore.make([{ publicKey: a.publicKey, label: "x" }]).keys.map((k) => k.label)).toEqual(["x"])
    expect(() => TrustStore.empty.add(new Uint8Array(31))).toThrow(RangeError)
  })

  it.effect("JSON round trip with hex keys", () =>
    Effect.gen(function* () {
      const store = TrustStore.empty.add(a.publicKey, "alice").add(b.publicKey)
      const json = store.toJson()
      expect(json.keys[0]).toEqual({ keyId: a.keyId, publicKey: encodeKeyPair(a).publicKey, label: "alice" })
      expect(json.keys[1]).not.toHaveProperty("label")
      const back = yield* TrustStore.fromJson(JSON.stringify(json))
      expect(back.toJson()).toEqual(json)
      const fromObject = yield* TrustStore.fromJson(json)
      expect(fromObject.keys).toEqual(store.keys)
    })
  )

  it.effect("fromJson accepts a single key file and rejects bad input", () =>
    Effect.gen(function* () {
      const single = yield* TrustStore.fromJson(encodeKeyPair(a))
      expect(single.keys.map((k) => k.keyId)).toEqual([a.keyId])
      const bad = [
        "{",
        "[]",
        "42",
        { keys: [{ publicKey: "00" }] },
        { keys: [{ publicKey: encodeKeyPair(a).publicKey, keyId: b.keyId }] },
        { nothing: true }
      ]
      for (const input of bad) {
        const error = yield* Effect.flip(TrustStore.fromJson(input))
        expect(error._tag).toBe("InvalidKey")
      }
    })
  )
})

describe("moduleHash", () => {
  it.effect("is SHA-256 hex; WebCrypto and @noble/hashes agree", () =>
    Effect.gen(function* () {
      // FIPS 180-2 test vector "abc"
      expect(yield* sha256Hex(utf8("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
      const hash = yield* moduleHash(addModule())
      const { sha256 } = yield* Effect.promise(() => import("@noble/hashes/sha2.js"))
      const noble = [...sha256(addModule())].map((x) => x.toString(16).padStart(2, "0")).join("")
      expect(hash).toBe(noble)
    })
  )

  it.effect("hashes unparseable bytes as they are (never fails)", () =>
    Effect.gen(function* () {
      expect(yield* moduleHash(utf8("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    })
  )
})

describe("test-keys", () => {
  it("the committed JSON file and the exported key agree, and the key is consistent", () => {
    expect(committed).toEqual(testOnlyKeyJson)
    expect(committed.warning).toBe(TEST_ONLY_WARNING)
    expect(keyPairFromSecretKey(testOnlyKeyPair.secretKey)).toEqual(testOnlyKeyPair)
  })

  it.effect("testOnlyTrustStore trusts modules signed with testOnlyKeyPair", () =>
    Effect.gen(function* () {
      const subject = { name: "fixture", version: "0.1.0" }
      const signed = yield* signModule(addModule(), subject, testOnlyKeyPair.secretKey)
      const v = yield* verifyModule(signed, subject, { trustStore: testOnlyTrustStore() })
      expect(v.keyId).toBe(testOnlyKeyPair.keyId)
      expect(testOnlyTrustStore().get(testOnlyKeyPair.keyId)?.label).toBe("test-only")
    })
  )
})
