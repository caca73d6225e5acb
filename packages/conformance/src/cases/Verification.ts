/**
 * Invariant 5 "Module Verification": only modules signed by a trusted key for
 * their name and version are loaded; malformed modules are refused with the
 * byte offset of the problem.
 */
import { agentId, CompileError, InvalidSignature, makeMetadata, ModuleTooLarge } from "@agent-runtime/domain"
import { keyPairFromSecretKey, SIGNATURE_SECTION, signModule, TrustStore } from "@agent-runtime/signing"
import { testOnlyKeyPair } from "@agent-runtime/signing/test-keys"
import { removeCustomSections } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { agentNames } from "../Fixtures.js"
import { MiB } from "../Harness.js"
import { section, SectionId } from "../internal/binary.js"
import type { SuiteContext } from "./Context.js"

/** A second, untrusted key (a fixed seed: deterministic, no randomness). */
const otherKey = keyPairFromSecretKey(Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff))

const strip = (bytes: Uint8Array): Uint8Array => {
  const r = removeCustomSections(bytes, SIGNATURE_SECTION)
  if (!r.ok) throw new Error(`fixture is malformed: ${r.error.reason}`)
  return r.value
}

export const verificationCases = ({ run, fixtures }: SuiteContext) =>
  describe("verification (Invariant 5)", () => {
    it.effect("every signed agent loads with the test trust store, signed by the TEST-ONLY key", () =>
      run(({ rt, load }) =>
        Effect.gen(function* () {
          for (const name of agentNames) {
            const id = yield* load(name)
            const module = yield* rt.getModule(id)
            expect(module.signedBy).toBe(testOnlyKeyPair.keyId)
            expect(module.metadata.name).toBe(name)
          }
          expect((yield* rt.stats).modules).toBe(agentNames.length)
        })
      )
    )

    it.effect("an unsigned agent is refused with InvalidSignature (unsigned) and nothing is registered", () =>
      run(({ rt }) =>
        Effect.gen(function* () {
          const unsigned = strip(yield* fixtures.bytes("counter"))
          const e = yield* Effect.flip(
            rt.loadModule(unsigned, makeMetadata({ name: "counter", version: fixtures.version("counter") }))
          )
          expect(e).toBeInstanceOf(InvalidSignature)
          expect(e.message).toMatch(/unsigned/)
          expect((yield* rt.stats).modules).toBe(0)
        })
      )
    )

    it.effect("a tampered agent (one byte flipped in its code, outside the signature section) is refused", () =>
      run(({ rt }) =>
        Effect.gen(function* () {
          for (const name of ["counter", "text"] as const) {
            const bytes = yield* fixtures.bytes(name)
            const code = section(bytes, SectionId.code)
            const at = (code.start + code.end) >> 1
            bytes[at] = bytes[at]! ^ 0x01
            const e = yield* Effect.flip(rt.loadModule(bytes, makeMetadata({ name, version: fixtures.version(name) })))
            expect(e).toBeInstanceOf(InvalidSignature)
            expect(e.message).toMatch(/tampered/)
          }
          // a tampered data byte too (the text agent has data segments)
          const text = yield* fixtures.bytes("text")
          const data = section(text, SectionId.data)
          text[data.end - 1] = text[data.end - 1]! ^ 0x80
          const d = yield* Effect.flip(
            rt.loadModule(text, makeMetadata({ name: "text", version: fixtures.version("text") }))
          )
          expect(d.message).toMatch(/tampered/)
          expect((yield* rt.stats).modules).toBe(0)
        })
      )
    )

    it.effect("a signature for another name or version (wrong metadata) is refused", () =>
      run(({ rt }) =>
        Effect.gen(function* () {
          const bytes = yield* fixtures.bytes("counter")
          const wrongName = yield* Effect.flip(
            rt.loadModule(bytes, makeMetadata({ name: "text", version: fixtures.version("counter") }))
          )
          expect(wrongName).toBeInstanceOf(InvalidSignature)
          expect(wrongName.message).toMatch(/metadata mismatch/)
          const wrongVersion = yield* Effect.flip(
            rt.loadModule(bytes, makeMetadata({ name: "counter", version: "9.9.9" }))
          )
          expect(wrongVersion.message).toMatch(/metadata mismatch/)
        })
      )
    )

    it.effect(
      "a module signed by an untrusted key is refused; the same module is refused by an empty trust store",
      () =>
        Effect.gen(function* () {
          const unsigned = strip(yield* fixtures.bytes("counter"))
          const resigned = yield* Effect.orDie(
            signModule(unsigned, { name: "counter", version: fixtures.version("counter") }, otherKey.secretKey)
          )
          const meta = makeMetadata({ name: "counter", version: fixtures.version("counter") })
          yield* run(({ rt }) =>
            Effect.gen(function* () {
              const e = yield* Effect.flip(rt.loadModule(resigned, meta))
              expect(e).toBeInstanceOf(InvalidSignature)
              expect(e.message).toMatch(new RegExp(`untrusted key ${otherKey.keyId}`))
            })
          )
          // the fixture signed with the TEST-ONLY key, under a trust store that only knows the other key
          const signed = yield* fixtures.bytes("counter")
          yield* run(
            ({ rt }) =>
              Effect.gen(function* () {
                const e = yield* Effect.flip(rt.loadModule(signed, meta))
                expect(e.message).toMatch(/untrusted key/)
                // … while the module signed by the now-trusted key loads
                const id = yield* rt.loadModule(resigned, meta)
                expect((yield* rt.getModule(id)).signedBy).toBe(otherKey.keyId)
              }),
            { verifier: { trustStore: TrustStore.empty.add(otherKey.publicKey, "other") } }
          )
        })
    )

    it.effect("allowUnsigned: true admits the unsigned agent (signedBy undefined), which then runs", () =>
      Effect.gen(function* () {
        const unsigned = strip(yield* fixtures.bytes("counter"))
        yield* run(
          ({ rt }) =>
            Effect.gen(function* () {
              const id = yield* rt.loadModule(
                unsigned,
                makeMetadata({ name: "counter", version: fixtures.version("counter") })
              )
              expect((yield* rt.getModule(id)).signedBy).toBeUndefined()
              yield* rt.spawnAgent(agentId("u"), id, { memoryLimit: MiB })
              expect(yield* rt.invoke(agentId("u"), "increment")).toEqual([1])
              // a bad signature is still refused in development mode
              const tampered = yield* fixtures.bytes("counter")
              const code = section(tampered, SectionId.code)
              tampered[code.start + 1] = tampered[code.start + 1]! ^ 0x01
              const e = yield* Effect.flip(
                rt.loadModule(tampered, makeMetadata({ name: "counter", version: fixtures.version("counter") }))
              )
              expect(e).toBeInstanceOf(InvalidSignature)
            }),
          { verifier: { allowUnsigned: true } }
        )
      })
    )

    it.effect("malformed contents in a correctly signed module → CompileError with the byte offset", () =>
      Effect.gen(function* () {
        const unsigned = strip(yield* fixtures.bytes("counter"))
        const types = section(unsigned, SectionId.type)
        // the first function type's form byte (0x60 after the LEB128 count) becomes an unknown form
        let at = types.start
        while ((unsigned[at]! & 0x80) !== 0) at++
        at++
        expect(unsigned[at]).toBe(0x60)
        unsigned[at] = 0x5f
        const signed = yield* Effect.orDie(
          signModule(unsigned, { name: "counter", version: fixtures.version("counter") }, testOnlyKeyPair.secretKey)
        )
        yield* run(({ rt }) =>
          Effect.gen(function* () {
            const e = yield* Effect.flip(
              rt.loadModule(signed, makeMetadata({ name: "counter", version: fixtures.version("counter") }))
            )
            expect(e).toBeInstanceOf(CompileError)
            const offset = (e as CompileError).offset
            expect(offset).toBeTypeOf("number")
            expect(offset).toBe(at)
            expect((yield* rt.stats).modules).toBe(0)
          })
        )
      })
    )

    it.effect("a module larger than maxModuleBytes → ModuleTooLarge { size, limit }", () =>
      run(
        ({ rt }) =>
          Effect.gen(function* () {
            const bytes = yield* fixtures.bytes("text")
            const e = yield* Effect.flip(
              rt.loadModule(bytes, makeMetadata({ name: "text", version: fixtures.version("text") }))
            )
            expect(e).toBeInstanceOf(ModuleTooLarge)
            expect(e).toMatchObject({ size: bytes.byteLength, limit: 1024 })
          }),
        { settings: { maxModuleBytes: 1024 } }
      )
    )
  })
