import { InvalidSignature, makeMetadata, ModuleVerifier } from "@agent-runtime/domain"
import { customSections, encodeCustomSection } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import {
  generateKeyPair,
  layer,
  moduleHash,
  readSignature,
  SIGNATURE_SECTION,
  signDetached,
  signModule,
  TrustStore,
  verifyModule
} from "../src/index.js"
import { addModule, fromUtf8, utf8, wasm } from "./fixtures.js"

const key = generateKeyPair()
const trustStore = TrustStore.empty.add(key.publicKey, "test")
const subject = { name: "adder", version: "1.0.0" } as const

/** The failure reason of a verification, or "valid". */
const reasonOf = (
  bytes: Uint8Array,
  meta: { name: string; version: string; signature?: Uint8Array },
  store = trustStore
) =>
  verifyModule(bytes, meta, { trustStore: store }).pipe(
    Effect.map(() => "valid"),
    Effect.catchTag("InvalidSignature", (e) => Effect.succeed(e.reason))
  )
const outcome = (
  bytes: Uint8Array,
  meta: { name: string; version: string; signature?: Uint8Array },
  store = trustStore
) => Effect.runPromise(reasonOf(bytes, meta, store))

const sigSection = (bytes: Uint8Array) => {
  const sections = customSections(bytes)
  if (!sections.ok) throw new Error("fixture is malformed")
  return sections.value.filter((s) => s.name === SIGNATURE_SECTION)
}

describe("signModule (embedded)", () => {
  it.effect("round trips: the signed module verifies and keeps the unsigned module's hash", () =>
    Effect.gen(function* () {
      const bytes = addModule()
      const signed = yield* signModule(bytes, subject, key.secretKey)
      const verification = yield* verifyModule(signed, subject, { trustStore })
      expect(verification.keyId).toBe(key.keyId)
      expect(verification.hash).toBe(yield* moduleHash(bytes))
      expect(yield* moduleHash(signed)).toBe(yield* moduleHash(bytes))
      expect(verification.hash).toMatch(/^[0-9a-f]{64}$/)
    })
  )

  it.effect("the signed module is still valid WebAssembly and runs", () =>
    Effect.gen(function* () {
      const signed = yield* signModule(addModule(), subject, key.secretKey)
      expect(wasm.validate(signed)).toBe(true)
      const instance = new wasm.Instance(new wasm.Module(signed))
      expect((instance.exports["add"] as (a: number, b: number) => number)(2, 40)).toBe(42)
    })
  )

  it.effect("the embedded payload is the documented JSON", () =>
    Effect.gen(function* () {
      const signed = yield* signModule(addModule(), subject, key.secretKey)
      const [section] = sigSection(signed)
      const json = JSON.parse(fromUtf8(signed.subarray(section!.dataOffset, section!.dataOffset + section!.dataLength)))
      expect(Object.keys(json)).toEqual(["v", "alg", "keyId", "name", "version", "hash", "sig"])
      expect(json).toMatchObject({ v: 1, alg: "ed25519", keyId: key.keyId, name: "adder", version: "1.0.0" })
      expect(json.hash).toBe(yield* moduleHash(addModule()))
      expect(json.sig).toMatch(/^[A-Za-z0-9+/]{86}==$/)
    })
  )

  it.effect("re-signing replaces the signature section instead of adding one", () =>
    Effect.gen(function* () {
      const other = generateKeyPair()
      const once = yield* signModule(addModule(), subject, key.secretKey)
      const twice = yield* signModule(once, { name: "adder", version: "2.0.0" }, other.secretKey)
      expect(sigSection(twice)).toHaveLength(1)
      const lookup = yield* readSignature(twice)
      expect(lookup._tag === "Signed" && lookup.signature.keyId).toBe(other.keyId)
      expect(yield* reasonOf(twice, { name: "adder", version: "2.0.0" }, trustStore.add(other.publicKey))).toBe("valid")
      expect(yield* reasonOf(twice, subject, trustStore.add(other.publicKey))).toMatch(/^metadata mismatch/)
    })
  )

  it.effect("signing is deterministic (RFC 8032) and independent of an embedded signature", () =>
    Effect.gen(function* () {
      const a = yield* signModule(addModule(), subject, key.secretKey)
      const b = yield* signModule(a, subject, key.secretKey)
      expect(b).toEqual(a)
    })
  )

  it.effect("malformed module bytes fail with SigningError naming the byte offset", () =>
    Effect.gen(function* () {
      const truncated = addModule().subarray(0, 12)
      const error = yield* Effect.flip(signModule(truncated, subject, key.secretKey))
      expect(error._tag).toBe("SigningError")
      expect(error.offset).toBeTypeOf("number")
      expect(error.message).toMatch(/at byte \d+/)
      const notWasm = yield* Effect.flip(signModule(utf8("hello world"), subject, key.secretKey))
      expect(notWasm._tag).toBe("SigningError")
    })
  )

  it.effect("refuses a secret key of the wrong length and names with newlines", () =>
    Effect.gen(function* () {
      const shortKey = yield* Effect.flip(signModule(addModule(), subject, new Uint8Array(31)))
      expect(shortKey.reason).toMatch(/32 bytes/)
      const newline = yield* Effect.flip(signModule(addModule(), { name: "a\nb", version: "1" }, key.secretKey))
      expect(newline.reason).toMatch(/newline/)
      const empty = yield* Effect.flip(signModule(addModule(), { name: "a", version: "" }, key.secretKey))
      expect(empty.reason).toMatch(/empty/)
    })
  )
})

describe("signDetached", () => {
  it.effect("round trips through metadata.signature and leaves the module unchanged", () =>
    Effect.gen(function* () {
      const bytes = addModule()
      const sig = yield* signDetached(bytes, subject, key.secretKey)
      expect(JSON.parse(fromUtf8(sig))).toMatchObject({ v: 1, alg: "ed25519", keyId: key.keyId })
      const verification = yield* verifyModule(bytes, { ...subject, signature: sig }, { trustStore })
      expect(verification).toEqual({ hash: yield* moduleHash(bytes), keyId: key.keyId })
    })
  )

  it.effect("a detached signature takes precedence over an embedded one", () =>
    Effect.gen(function* () {
      const other = generateKeyPair()
      const signedByOther = yield* signModule(addModule(), subject, other.secretKey)
      const detached = yield* signDetached(addModule(), subject, key.secretKey)
      expect(yield* reasonOf(signedByOther, subject)).toBe(`untrusted key ${other.keyId}`)
      expect(yield* reasonOf(signedByOther, { ...subject, signature: detached })).toBe("valid")
    })
  )

  it("a detached signature of another module is refused as tampered", async () => {
    const sig = await Effect.runPromise(signDetached(addModule(), subject, key.secretKey))
    const other = addModule()
    other[other.length - 1] = 0x6f // custom "meta" payload "hi" -> "ho"
    expect(await outcome(other, { ...subject, signature: sig })).toMatch(/^tampered/)
  })
})

describe("verifyModule refuses", () => {
  const fixture = async () => {
    const signed = await Effect.runPromise(signModule(addModule(), subject, key.secretKey))
    const [section] = sigSection(signed)
    return { signed, sigStart: section!.offset, sigEnd: section!.offset + section!.length }
  }

  it("every single-byte change outside the signature section (all positions, several flips)", async () => {
    const { signed, sigStart, sigEnd } = await fixture()
    const accepted: Array<string> = []
    const reasons = new Set<string>()
    let tried = 0
    for (let i = 0; i < signed.length; i++) {
      if (i >= sigStart && i < sigEnd) continue
      for (const flip of [0x01, 0x80, 0xff]) {
        const tampered = Uint8Array.from(signed)
        tampered[i] = tampered[i]! ^ flip
        tried++
        const reason = await outcome(tampered, subject)
        if (reason === "valid") accepted.push(`byte ${i} ^ ${flip}`)
        reasons.add(reason.split(/[: ]/)[0]!)
      }
    }
    expect(tried).toBeGreaterThan(150)
    expect(accepted).toEqual([])
    expect(reasons).toContain("tampered")
    expect(reasons).toContain("malformed")
  })

  it("every single-byte change inside the signature section too", async () => {
    const { signed, sigStart, sigEnd } = await fixture()
    const accepted: Array<string> = []
    for (let i = sigStart; i < sigEnd; i++) {
      for (const flip of [0x01, 0x20]) {
        const tampered = Uint8Array.from(signed)
        tampered[i] = tampered[i]! ^ flip
        if ((await outcome(tampered, subject)) === "valid") accepted.push(`byte ${i} ^ ${flip}`)
      }
    }
    expect(accepted).toEqual([])
  })

  it('an unsigned module with reason "unsigned"', async () => {
    expect(await outcome(addModule(), subject)).toBe("unsigned")
  })

  it("a module signed by an untrusted key", async () => {
    const { signed, sigStart, sigEnd } = await fixture()
    const stranger = generateKeyPair()
    const bytes = await Effect.runPromise(signModule(addModule(), subject, stranger.secretKey))
    expect(await outcome(bytes, subject)).toBe(`untrusted key ${stranger.keyId}`)
    expect(await outcome(signed, subject, TrustStore.empty)).toBe(`untrusted key ${key.keyId}`)
    expect(await outcome(signed, subject, trustStore.remove(key.keyId))).toMatch(/^untrusted key/)
  })

  it("a wrong name or version", async () => {
    const { signed, sigStart, sigEnd } = await fixture()
    expect(await outcome(signed, { name: "other", version: "1.0.0" })).toBe("metadata mismatch: signed as adder@1.0.0")
    expect(await outcome(signed, { name: "adder", version: "1.0.1" })).toMatch(/^metadata mismatch/)
  })

  it("a signature made by another key under a trusted key id (bad signature)", async () => {
    const stranger = generateKeyPair()
    const forged = await Effect.runPromise(signDetached(addModule(), subject, stranger.secretKey))
    const json = JSON.parse(fromUtf8(forged))
    json.keyId = key.keyId
    expect(await outcome(addModule(), { ...subject, signature: utf8(JSON.stringify(json)) })).toBe("bad signature")
  })

  it("an edited name in the signature JSON (bad signature)", async () => {
    const sig = await Effect.runPromise(signDetached(addModule(), subject, key.secretKey))
    const json = JSON.parse(fromUtf8(sig))
    json.name = "other"
    expect(await outcome(addModule(), { name: "other", version: "1.0.0", signature: utf8(JSON.stringify(json)) })).toBe(
      "bad signature"
    )
  })

  it("garbage signature payloads, embedded or detached", async () => {
    const good = JSON.parse(fromUtf8(await Effect.runPromise(signDetached(addModule(), subject, key.secretKey))))
    const variants: Array<[string, Uint8Array]> = [
      ["empty", new Uint8Array()],
      ["not UTF-8", Uint8Array.from([0xff, 0xfe, 0x00])],
      ["not JSON", utf8("{nope")],
      ["array", utf8("[]")],
      ["null", utf8("null")],
      ["v2", utf8(JSON.stringify({ ...good, v: 2 }))],
      ["rsa", utf8(JSON.stringify({ ...good, alg: "rsa" }))],
      ["short keyId", utf8(JSON.stringify({ ...good, keyId: "abcd" }))],
      ["upper keyId", utf8(JSON.stringify({ ...good, keyId: good.keyId.toUpperCase() }))],
      ["short hash", utf8(JSON.stringify({ ...good, hash: good.hash.slice(2) }))],
      ["short sig", utf8(JSON.stringify({ ...good, sig: "AAAA" }))],
      ["sig not base64", utf8(JSON.stringify({ ...good, sig: "!".repeat(88) }))],
      ["sig non-canonical", utf8(JSON.stringify({ ...good, sig: good.sig.slice(0, 85) + "B==" }))],
      ["sig number", utf8(JSON.stringify({ ...good, sig: 42 }))],
      ["missing name", utf8(JSON.stringify({ ...good, name: undefined }))],
      ["extra field", utf8(JSON.stringify({ ...good, extra: true }))],
      ["newline name", utf8(JSON.stringify({ ...good, name: "adder\n1.0.0" }))]
    ]
    for (const [label, payload] of variants) {
      const detached = await outcome(addModule(), { ...subject, signature: payload })
      expect(detached, label).toMatch(/^malformed signature: /)
      const embedded = Uint8Array.from([...addModule(), ...encodeCustomSection(SIGNATURE_SECTION, payload)])
      expect(await outcome(embedded, subject), label).toMatch(/^malformed signature: /)
    }
    // with allowUnsigned, a bad signature is still refused
    const garbage = Uint8Array.from([...addModule(), ...encodeCustomSection(SIGNATURE_SECTION, utf8("{}"))])
    const exit = await Effect.runPromiseExit(verifyModule(garbage, subject, { trustStore, allowUnsigned: true }))
    expect(Exit.isFailure(exit)).toBe(true)
  })

  it("two embedded signature sections", async () => {
    const { signed, sigStart, sigEnd } = await fixture()
    const twice = Uint8Array.from([...signed, ...signed.subarray(sigStart, sigEnd)])
    expect(await outcome(twice, subject)).toBe("multiple signature sections (2)")
  })

  it("malformed wasm bytes with the byte offset, never an exception", async () => {
    const inputs = [
      new Uint8Array(),
      utf8("hello"),
      addModule().subarray(0, 7),
      addModule().subarray(0, 20),
      Uint8Array.from([...addModule(), 0x0c, 0x7f]),
      Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00])
    ]
    for (const input of inputs) {
      expect(() => outcome(input, subject)).not.toThrow()
      expect(await outcome(input, subject)).toMatch(/^malformed module at byte \d+: /)
    }
  })
})

describe("layer (ModuleVerifier)", () => {
  it.effect("provides the domain port; refuses unsigned modules by default", () =>
    Effect.gen(function* () {
      const verifier = yield* ModuleVerifier
      const signed = yield* signModule(addModule(), subject, key.secretKey)
      const ok = yield* verifier.verify(signed, makeMetadata(subject))
      expect(ok.keyId).toBe(key.keyId)
      const error = yield* Effect.flip(verifier.verify(addModule(), makeMetadata(subject)))
      expect(error).toBeInstanceOf(InvalidSignature)
      expect(error).toMatchObject({ _tag: "InvalidSignature", module: "adder@1.0.0", reason: "unsigned" })
    }).pipe(Effect.provide(layer({ trustStore })))
  )

  it.effect("hashes the module without its signature through hints.sha256HexNow when it answers", () =>
    Effect.gen(function* () {
      const verifier = yield* ModuleVerifier
      const bytes = addModule()
      const signed = yield* signModule(bytes, subject, key.secretKey)
      const expected = yield* moduleHash(bytes)
      const seen: Array<number> = []
      // the runtime's synchronous hash: asked for the bytes without the signature section
      const answering = (b: Uint8Array) => {
        seen.push(b.length)
        return expected
      }
      const viaHint = yield* verifier.verify(signed, makeMetadata(subject), { sha256HexNow: answering })
      expect(viaHint).toEqual({ hash: expected, keyId: key.keyId })
      expect(seen).toEqual([bytes.length])
      // a hash that is not the module's is taken as given: the signature no longer matches
      const lying = yield* Effect.flip(
        verifier.verify(signed, makeMetadata(subject), { sha256HexNow: () => "0".repeat(64) })
      )
      expect(lying.reason).toMatch(/^tampered/)
      // no answer: the verifier hashes by its own means
      const silent = yield* verifier.verify(signed, makeMetadata(subject), { sha256HexNow: () => undefined })
      expect(silent).toEqual({ hash: expected, keyId: key.keyId })
    }).pipe(Effect.provide(layer({ trustStore })))
  )

  it.effect("allowUnsigned accepts unsigned modules with keyId undefined", () =>
    Effect.gen(function* () {
      const verifier = yield* ModuleVerifier
      const ok = yield* verifier.verify(addModule(), makeMetadata(subject))
      expect(ok).toEqual({ hash: yield* moduleHash(addModule()), keyId: undefined })
      const detached = yield* signDetached(addModule(), subject, key.secretKey)
      const viaMetadata = yield* verifier.verify(addModule(), makeMetadata({ ...subject, signature: detached }))
      expect(viaMetadata.keyId).toBe(key.keyId)
    }).pipe(Effect.provide(layer({ trustStore, allowUnsigned: true })))
  )
})
