import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as Sha256 from "../../src/internal/Sha256.js"
import { bytesOf } from "@agent-runtime/test-support/mutate"

const webCrypto = async (bytes: Uint8Array): Promise<string> =>
  Buffer.from(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)).toString("hex")

describe("Sha256 (load cache hashing)", () => {
  it("matches the FIPS 180-4 examples", () => {
    expect(Sha256.sha256HexSync(new Uint8Array())).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    expect(Sha256.sha256HexSync(new TextEncoder().encode("abc"))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    expect(
      Sha256.sha256HexSync(new TextEncoder().encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    ).toBe("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
  })

  it("agrees with WebCrypto at every padding boundary and across SYNC_LIMIT", async () => {
    const lengths = [
      1,
      55,
      56,
      57,
      63,
      64,
      65,
      119,
      120,
      127,
      128,
      1000,
      Sha256.SYNC_LIMIT - 1,
      Sha256.SYNC_LIMIT,
      70_001
    ]
    for (const [i, length] of lengths.entries()) {
      const bytes = bytesOf(length, i + 1)
      const expected = await webCrypto(bytes)
      expect(Sha256.sha256HexSync(bytes), `length ${length}`).toBe(expected)
      expect(await Effect.runPromise(Sha256.sha256Hex(bytes)), `length ${length}`).toBe(expected)
    }
  })

  it("hashes a view of a SharedArrayBuffer too (WebCrypto refuses those: the JavaScript SHA-256 answers)", async () => {
    const plain = bytesOf(Sha256.SYNC_LIMIT + 100, 7)
    const shared = new Uint8Array(new SharedArrayBuffer(plain.length))
    shared.set(plain)
    expect(await Effect.runPromise(Sha256.sha256Hex(shared))).toBe(await webCrypto(plain))
  })
})

describe("startSha256Hex and fingerprint", () => {
  it.effect("startSha256Hex gives sha256Hex's digest, below and above SYNC_LIMIT", () =>
    Effect.gen(function* () {
      for (const n of [0, 100, Sha256.SYNC_LIMIT, 300_000]) {
        const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff)
        const started = Sha256.startSha256Hex(bytes)
        expect(yield* started).toBe(yield* Sha256.sha256Hex(bytes))
        expect(Sha256.hashesOffThread(bytes)).toBe(Sha256.available && n >= Sha256.SYNC_LIMIT)
      }
    })
  )

  it("fingerprints equal bytes equally, and tell apart lengths and sampled bytes", () => {
    const big = Uint8Array.from({ length: 100_000 }, (_, i) => i & 0xff)
    expect(Sha256.fingerprint(big)).toBe(Sha256.fingerprint(big.slice()))
    const last = big.slice()
    last[last.length - 1] = 1
    expect(Sha256.fingerprint(last)).not.toBe(Sha256.fingerprint(big))
    const first = big.slice()
    first[0] = 9
    expect(Sha256.fingerprint(first)).not.toBe(Sha256.fingerprint(big))
    expect(Sha256.fingerprint(big.subarray(1))).not.toBe(Sha256.fingerprint(big))
    const small = Uint8Array.from([1, 2, 3])
    expect(Sha256.fingerprint(small)).toBe(Sha256.fingerprint(Uint8Array.from([1, 2, 3])))
    expect(Sha256.fingerprint(small)).not.toBe(Sha256.fingerprint(Uint8Array.from([1, 2, 4])))
  })
})

describe("hasher: the platform's SHA-256 injected (PlatformServices.sha256Hex) and the fallback", () => {
  const nodeHex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

  it.effect("the injected and the fallback hashes agree on random inputs (below and above SYNC_LIMIT)", () =>
    Effect.gen(function* () {
      let calls = 0
      const injected = Sha256.hasher((bytes) => {
        calls++
        return nodeHex(bytes)
      })
      expect(injected.injected).toBe(true)
      expect(Sha256.hasher()).toBe(Sha256.fallbackHasher)
      // a seeded sequence of lengths, so a failure reproduces: 0 .. ~3 × SYNC_LIMIT, plus a few large ones
      let seed = 0x1234567
      const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0)
      const lengths = [
        ...Array.from({ length: 40 }, () => next() % (3 * Sha256.SYNC_LIMIT)),
        Sha256.SYNC_LIMIT,
        250_000,
        1_000_003
      ]
      for (const [i, length] of lengths.entries()) {
        const bytes = bytesOf(length, next())
        const fallback = yield* Sha256.fallbackHasher.sha256Hex(bytes)
        expect(yield* injected.sha256Hex(bytes), `input ${i}, length ${length}`).toBe(fallback)
        expect(yield* injected.startSha256Hex(bytes), `input ${i}, length ${length}`).toBe(fallback)
        expect(injected.sha256HexNow(bytes), `input ${i}, length ${length}`).toBe(fallback)
        expect(injected.hashesOffThread(bytes)).toBe(false)
        // the fallback hashes synchronously only below SYNC_LIMIT (where WebCrypto exists), with the same digest
        const now = Sha256.fallbackHasher.sha256HexNow(bytes)
        expect(now).toBe(Sha256.available && length >= Sha256.SYNC_LIMIT ? undefined : fallback)
      }
      expect(calls).toBe(3 + 3 * lengths.length) // its 3 known answers, when the hasher was made
    })
  )

  it.effect(
    "an injected function whose known answers are wrong (throws, short, uppercase, not a string, another digest, a constant) is not used",
    () =>
      Effect.gen(function* () {
        const bytes = bytesOf(Sha256.SYNC_LIMIT + 5, 3)
        const expected = yield* Sha256.fallbackHasher.sha256Hex(bytes)
        const answers: ReadonlyArray<(b: Uint8Array) => string> = [
          () => {
            throw new Error("no digest today")
          },
          () => "abc",
          (b) => nodeHex(b).toUpperCase(),
          () => 42 as unknown as string,
          (b) => createHash("sha512").update(b).digest("hex").slice(0, 64),
          () => "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ]
        for (const answer of answers) {
          const h = Sha256.hasher(answer)
          expect(h).toBe(Sha256.fallbackHasher)
          expect(yield* h.sha256Hex(bytes)).toBe(expected)
          expect(yield* h.startSha256Hex(bytes)).toBe(expected)
          // refused now (too large for the JavaScript route): undefined, then the asynchronous route hashes
          expect(h.sha256HexNow(bytes)).toBe(Sha256.available ? undefined : expected)
          expect(yield* h.sha256Hex(bytes)).toBe(expected)
          expect(h.sha256HexNow(bytes.subarray(0, 100))).toBe(Sha256.sha256HexSync(bytes.subarray(0, 100)))
        }
      })
  )
})

describe("hasher: an injected SHA-256 that gives the known answers is checked per input for the shape of its answer", () => {
  const nodeHex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

  it.effect("an input it throws on, or answers with anything but a 64-char string, is hashed by the fallback", () =>
    Effect.gen(function* () {
      const refused = bytesOf(Sha256.SYNC_LIMIT + 7, 11)
      const short = bytesOf(300, 12)
      const odd = bytesOf(301, 13)
      const fine = bytesOf(302, 14)
      const asked: Array<Uint8Array> = []
      const h = Sha256.hasher((b) => {
        asked.push(b)
        if (b === refused) throw new Error("not this one")
        if (b === short) return nodeHex(b).slice(0, 40)
        if (b === odd) return Buffer.from(nodeHex(b), "hex") as unknown as string
        return nodeHex(b)
      })
      expect(h.injected).toBe(true)
      expect(asked).toHaveLength(3) // the known answers
      for (const b of [refused, short, odd, fine]) {
        const expected = yield* Sha256.fallbackHasher.sha256Hex(b)
        expect(yield* h.sha256Hex(b)).toBe(expected)
        expect(yield* h.startSha256Hex(b)).toBe(expected)
      }
      // the small ones are hashed now by JavaScript when refused; the large refused one only asynchronously
      expect(h.sha256HexNow(short)).toBe(Sha256.sha256HexSync(short))
      expect(h.sha256HexNow(odd)).toBe(Sha256.sha256HexSync(odd))
      expect(h.sha256HexNow(fine)).toBe(nodeHex(fine))
      expect(h.sha256HexNow(refused)).toBe(Sha256.available ? undefined : Sha256.sha256HexSync(refused))
    })
  )
})
