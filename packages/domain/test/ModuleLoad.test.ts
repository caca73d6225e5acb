import {
  AgentRuntime,
  AgentRuntimes,
  CompileError,
  findVerified,
  layerPlatformServices,
  makeMetadata,
  ModuleCache,
  moduleHash,
  ModuleRepository,
  ModuleVerifier,
  type VerifyHints,
  WasmEngine
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { TestClock } from "effect/testing"
import { createHash } from "node:crypto"
import {
  collecting,
  makeTestEngine,
  runtimeLayer,
  type TestEngine,
  testVerifierFor,
  watModule
} from "./support/TestEngine.js"

const fns = { add: { params: ["i32"], results: ["i32"] } }
const moduleBytes = Effect.promise(() => wat(watModule(fns)))
const meta = (name: string, version = "1.0.0", extra: { author?: string; signature?: Uint8Array } = {}) =>
  makeMetadata({ name, version, ...extra })

/** The test engine without `validate` (`loadModule` then compiles the bytes as loaded), counting into `t`. */
const compilingLayer = (t: TestEngine) => {
  const { validate: _, ...engine } = t.engine
  return AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
    Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, engine), testVerifierFor(t)))
  )
}

/** The host's `WebAssembly.validate` (the domain's tsconfig has no DOM types). */
const wasmValidate = (bytes: Uint8Array): boolean =>
  (globalThis as unknown as { readonly WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(bytes)

/**
 * A module `(func (export "f"))` whose body is `nop` followed by `bad` then
 * `end`, assembled by hand; returns the bytes and the offset of `bad`.
 */
const withBody = (bad: ReadonlyArray<number>) => {
  const body = [0x00, 0x01, ...bad, 0x0b] // no locals, nop, <bad>, end
  const bytes = new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    0x01,
    0x04,
    0x01,
    0x60,
    0x00,
    0x00, // type: () -> ()
    0x03,
    0x02,
    0x01,
    0x00, // function 0: type 0
    0x07,
    0x05,
    0x01,
    0x01,
    0x66,
    0x00,
    0x00, // export "f" func 0
    0x0a,
    body.length + 2,
    0x01,
    body.length,
    ...body // code
  ])
  return { bytes, badAt: bytes.length - 1 - bad.length }
}

/** The test engine with `validate` on the host's `WebAssembly.validate`, like the native engine. */
const realValidate = (t: TestEngine) =>
  Layer.succeed(WasmEngine, {
    ...t.engine,
    validate: (bytes: Uint8Array) =>
      Effect.suspend(() => {
        t.validates++
        return wasmValidate(bytes)
          ? Effect.void
          : Effect.fail(new CompileError({ reason: "the engine refused the module" }))
      })
  })

describe("loadModule: the load cache (bytes identified by their SHA-256)", () => {
  it.effect("a second load of the same bytes calls neither the verifier nor the engine, and is a cache hit", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* moduleBytes
      const [ids, events] = yield* collecting(
        Effect.gen(function* () {
          const a = yield* runtime.loadModule(bytes, meta("m"))
          const b = yield* runtime.loadModule(bytes, meta("m"))
          const c = yield* runtime.loadModule(Uint8Array.from(bytes), meta("m")) // equal bytes, another array
          return [a, b, c]
        })
      )
      expect(new Set(ids).size).toBe(1)
      expect(t.verifies).toBe(1)
      expect(t.validates).toBe(1)
      expect(t.compiles).toBe(0)
      expect(
        events.filter((e) => e._tag === "ModuleLoaded").map((e) => e._tag === "ModuleLoaded" && e.cacheHit)
      ).toEqual([false, true, true])
      const stats = yield* runtime.stats
      expect(stats.cache.loads).toBe(1)
      expect(stats.modules).toBe(1)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("on an engine without validate, the second load does not compile again", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* moduleBytes
      yield* runtime.loadModule(bytes, meta("m"))
      yield* runtime.loadModule(bytes, meta("m"))
      expect(t.verifies).toBe(1)
      expect(t.compiles).toBe(1)
    }).pipe(Effect.provide(compilingLayer(t)))
  })

  it.effect(
    "the same bytes under other metadata are verified again (the signature covers name + version), not parsed or validated",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const bytes = yield* moduleBytes
        const v1 = yield* runtime.loadModule(bytes, meta("m", "1.0.0"))
        const v2 = yield* runtime.loadModule(bytes, meta("m", "2.0.0"))
        expect(v2).not.toBe(v1)
        expect(t.verifies).toBe(2)
        expect(t.validates).toBe(1)
        // a name the verifier refuses stays refused although these bytes are cached
        const evil = yield* Effect.flip(runtime.loadModule(bytes, meta("evil")))
        expect(evil._tag).toBe("InvalidSignature")
        expect(t.verifies).toBe(3)
        // a detached signature is part of what was verified: another one is checked again
        yield* runtime.loadModule(bytes, meta("m", "1.0.0", { signature: new Uint8Array([1, 2, 3]) }))
        expect(t.verifies).toBe(4)
        yield* runtime.loadModule(bytes, meta("m", "1.0.0", { signature: new Uint8Array([1, 2, 3]) }))
        yield* runtime.loadModule(bytes, meta("m", "2.0.0"))
        expect(t.verifies).toBe(4)
        expect((yield* runtime.getModule(v2)).exports.map((e) => e.name)).toEqual(["memory", "add"])
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect("a key the verifier no longer trusts is not served from the cache", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* moduleBytes
      yield* runtime.loadModule(bytes, meta("m", "1.0.0", { author: "k1" }))
      yield* runtime.loadModule(bytes, meta("m", "1.0.0", { author: "k1" }))
      expect(t.verifies).toBe(1)
      t.revoked.add("k1")
      const e = yield* Effect.flip(runtime.loadModule(bytes, meta("m", "1.0.0", { author: "k1" })))
      expect(e._tag).toBe("InvalidSignature")
      expect(t.verifies).toBe(2)
      t.revoked.delete("k1")
      yield* runtime.loadModule(bytes, meta("m", "1.0.0", { author: "k1" }))
      expect(t.verifies).toBe(3)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("the cache GC drops a load entry with its verifications: the next load verifies again", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* moduleBytes
      const id = yield* runtime.loadModule(bytes, meta("m"))
      yield* TestClock.adjust("50 minutes")
      yield* runtime.loadModule(bytes, meta("m")) // a hit refreshes the entry's last access
      yield* TestClock.adjust("20 minutes")
      yield* runtime.runGc
      expect((yield* runtime.stats).cache.loads).toBe(1)
      expect(t.verifies).toBe(1)
      yield* TestClock.adjust("61 minutes")
      yield* runtime.runGc
      expect((yield* runtime.stats).cache.loads).toBe(0)
      expect(yield* runtime.loadModule(bytes, meta("m"))).toBe(id)
      expect(t.verifies).toBe(2)
      expect(t.validates).toBe(1) // the module was still registered: found by its id after verifying
      expect((yield* runtime.stats).cache.loads).toBe(1)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("refused loads are not cached: a tampered module fails every time", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* moduleBytes
      for (let i = 0; i < 2; i++) {
        expect((yield* Effect.flip(runtime.loadModule(bytes, meta("evil"))))._tag).toBe("InvalidSignature")
      }
      expect(t.verifies).toBe(2)
      expect((yield* runtime.stats).cache.loads).toBe(0)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})

describe("loadModule: cold loads let the engine check function bodies", () => {
  const layer = (t: TestEngine) =>
    AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
      Layer.provide(Layer.mergeAll(realValidate(t), testVerifierFor(t)))
    )

  it.effect("a body the engine refuses comes out as the reader's CompileError with its byte offset", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const { bytes, badAt } = withBody([0xff]) // not an opcode
      const e = yield* Effect.flip(runtime.loadModule(bytes, meta("bad")))
      expect(e._tag).toBe("CompileError")
      if (e._tag !== "CompileError") return
      expect(e.offset).toBe(badAt)
      expect(e.kind).toBeDefined()
      expect(e.reason).not.toMatch(/engine refused/)
      expect(t.validates).toBe(1) // the engine was the validator; the strict reader ran only to explain
    }).pipe(Effect.provide(layer(t)))
  })

  it.effect("a body only the engine can refuse (ill-typed) is the engine's CompileError; a valid one loads", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const { bytes } = withBody([0x6a]) // i32.add on an empty stack: decodes, does not type-check
      const e = yield* Effect.flip(runtime.loadModule(bytes, meta("ill-typed")))
      expect(e._tag).toBe("CompileError")
      expect(e.message).toMatch(/engine refused/)
      const ok = withBody([0x01]) // nop
      const id = yield* runtime.loadModule(ok.bytes, meta("ok"))
      expect((yield* runtime.getModule(id)).functions.get("f")).toEqual({ params: [], results: [] })
    }).pipe(Effect.provide(layer(t)))
  })
})

describe("ModuleCache load entries", () => {
  const info = {
    types: [],
    imports: [],
    exports: [],
    functions: [],
    tables: [],
    memories: [],
    globals: [],
    tags: [],
    start: undefined,
    dataCount: undefined,
    sections: [],
    customSections: []
  }
  const load = (bytesHash: string, size: number, name = "m", signature?: Uint8Array) => ({
    bytesHash,
    moduleHash: moduleHash(bytesHash),
    info,
    size,
    verified: { name, version: "1", signature, keyId: "k" }
  })

  it("keeps verifications per entry, matches name + version + detached signature, and goes with dropIdle and the byte bound", () => {
    const c = new ModuleCache(100)
    c.addLoad(load("a", 40), 0)
    c.addLoad(load("a", 40, "other"), 1)
    c.addLoad(load("a", 40, "m", new Uint8Array([7])), 2)
    const a = c.getLoad("a", 5)
    expect(a?.verified.map((v) => v.name)).toEqual(["m", "other", "m"])
    expect(a && findVerified(a, { name: "m", version: "1" })?.signature).toBeUndefined()
    expect(a && findVerified(a, { name: "m", version: "1", signature: new Uint8Array([7]) })).toBeDefined()
    expect(a && findVerified(a, { name: "m", version: "1", signature: new Uint8Array([8]) })).toBeUndefined()
    expect(a && findVerified(a, { name: "m", version: "2" })).toBeUndefined()
    c.addLoad(load("b", 40), 50)
    c.addLoad(load("c", 40), 50) // over 100 bytes: the least recently used ("a") goes
    expect(c.getLoad("a", 60)).toBeUndefined()
    expect(c.stats().loads).toBe(2)
    c.addLoad(load("huge", 101), 60) // larger than the cache: not kept
    expect(c.getLoad("huge", 60)).toBeUndefined()
    c.getLoad("c", 90)
    expect(c.dropIdle(100, 30)).toEqual([]) // no compiled entry; the idle load entry "b" goes
    expect(c.loadEntries().map((e) => e.bytesHash)).toEqual(["c"])
    expect(c.stats().entries).toBe(0)
  })
})

/** `bytes` with a custom section of `size` payload bytes right after the header (≥ 8 KiB: hashed by WebCrypto). */
const padded = (bytes: Uint8Array, size: number, fill = 0x5a): { bytes: Uint8Array; shift: number } => {
  const name = [0x03, 0x70, 0x61, 0x64] // "pad"
  const content = name.length + size
  const leb: Array<number> = []
  for (let n = content; ; ) {
    const b = n & 0x7f
    n >>>= 7
    if (n === 0) {
      leb.push(b)
      break
    }
    leb.push(b | 0x80)
  }
  const section = [0x00, ...leb, ...name]
  const out = new Uint8Array(bytes.length + section.length + size)
  out.set(bytes.subarray(0, 8))
  out.set(section, 8)
  out.fill(fill, 8 + section.length, 8 + section.length + size)
  out.set(bytes.subarray(8), 8 + section.length + size)
  return { bytes: out, shift: section.length + size }
}

describe("loadModule: new large bytes are read and validated while they are hashed", () => {
  const layer = (t: TestEngine) =>
    AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
      Layer.provide(Layer.mergeAll(realValidate(t), testVerifierFor(t)))
    )

  it.effect("a refused body: the same CompileError (reader's offset and kind) as for small bytes", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const { bytes, badAt } = withBody([0xff])
      const small = yield* Effect.flip(runtime.loadModule(bytes, meta("bad")))
      const big = padded(bytes, 64 * 1024)
      const e = yield* Effect.flip(runtime.loadModule(big.bytes, meta("bad")))
      expect(e._tag).toBe("CompileError")
      if (e._tag !== "CompileError" || small._tag !== "CompileError") return
      expect(e.offset).toBe(badAt + big.shift)
      expect(e.kind).toBe(small.kind)
      expect(e.reason).toBe(small.reason.replace(String(badAt), String(badAt + big.shift)))
      expect(t.validates).toBe(2)
      // ill-typed (only the engine can tell): the engine's error, as for small bytes
      const ill = padded(withBody([0x6a]).bytes, 64 * 1024)
      expect((yield* Effect.flip(runtime.loadModule(ill.bytes, meta("ill")))).message).toMatch(/engine refused/)
    }).pipe(Effect.provide(layer(t)))
  })

  it.effect("a bad signature is reported before a body the engine refuses (validated early, reported after)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const big = padded(withBody([0x6a]).bytes, 64 * 1024)
      const e = yield* Effect.flip(runtime.loadModule(big.bytes, meta("evil")))
      expect(e._tag).toBe("InvalidSignature")
      expect(t.verifies).toBe(1)
      expect(t.validates).toBe(1) // the early path ran: validated before the signature check, reported after
      // small bytes take the sequential path: the signature is checked before any validation
      expect((yield* Effect.flip(runtime.loadModule(withBody([0x6a]).bytes, meta("evil"))))._tag).toBe(
        "InvalidSignature"
      )
      expect(t.validates).toBe(1)
    }).pipe(Effect.provide(layer(t)))
  })

  it.effect("a large module loads once: same id, verified and validated once, later loads are cache hits", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const big = padded(yield* moduleBytes, 200 * 1024)
      const [ids, events] = yield* collecting(
        Effect.gen(function* () {
          const a = yield* runtime.loadModule(big.bytes, meta("m"))
          const b = yield* runtime.loadModule(Uint8Array.from(big.bytes), meta("m"))
          // same length, different bytes in a sampled place: a new fingerprint, another module
          const other = padded(yield* moduleBytes, 200 * 1024, 0x33)
          const c = yield* runtime.loadModule(other.bytes, meta("m"))
          return [a, b, c]
        })
      )
      expect(ids[0]).toBe(ids[1])
      expect(ids[2]).not.toBe(ids[0])
      expect(t.verifies).toBe(2)
      expect(t.validates).toBe(2)
      expect(
        events.filter((e) => e._tag === "ModuleLoaded").map((e) => e._tag === "ModuleLoaded" && e.cacheHit)
      ).toEqual([false, true, false])
      const m = yield* runtime.getModule(ids[0]!)
      expect(m.bytes.length === big.bytes.length && m.bytes.every((b, i) => b === big.bytes[i])).toBe(true)
      expect(m.bytes === big.bytes).toBe(false) // the runtime's own copy
      expect((yield* runtime.stats).cache.loads).toBe(2)
    }).pipe(Effect.provide(layer(t)))
  })

  it.effect("equal bytes loaded concurrently get one module id", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const big = padded(yield* moduleBytes, 100 * 1024)
      const ids = yield* Effect.all(
        [runtime.loadModule(big.bytes, meta("m")), runtime.loadModule(Uint8Array.from(big.bytes), meta("m"))],
        { concurrency: 2 }
      )
      expect(ids[0]).toBe(ids[1])
      expect((yield* runtime.stats).modules).toBe(1)
    }).pipe(Effect.provide(layer(t)))
  })
})

describe("ModuleCache.mayHoldLoad (the fingerprint index of load entries)", () => {
  const load = (bytesHash: string, size: number, fingerprint?: string) => ({
    bytesHash,
    moduleHash: moduleHash(bytesHash),
    info: {} as never,
    size,
    verified: { name: "m", version: "1.0.0", signature: undefined, keyId: undefined },
    fingerprint
  })

  it("answers false only when no entry has the fingerprint; entries leaving the cache take theirs along", () => {
    const c = new ModuleCache(100)
    expect(c.mayHoldLoad("f1")).toBe(false)
    c.addLoad(load("a", 40, "f1"), 0)
    c.addLoad(load("b", 40, "f1"), 0) // another entry with the same fingerprint (a collision)
    expect(c.mayHoldLoad("f1")).toBe(true)
    expect(c.mayHoldLoad("f2")).toBe(false)
    c.deleteLoad("a")
    expect(c.mayHoldLoad("f1")).toBe(true)
    c.addLoad(load("c", 40, "f3"), 1)
    c.addLoad(load("d", 40, "f4"), 2) // over 100 bytes: "b" (least recently used) goes
    expect(c.getLoad("b", 3)).toBeUndefined()
    expect(c.mayHoldLoad("f1")).toBe(false)
    c.dropIdle(1000, 10)
    expect(c.mayHoldLoad("f3")).toBe(false)
    expect(c.mayHoldLoad("f4")).toBe(false)
    c.addLoad(load("e", 10), 1000) // without a fingerprint: nothing can be ruled out while it lives
    expect(c.mayHoldLoad("f9")).toBe(true)
    c.deleteLoad("e")
    expect(c.mayHoldLoad("f9")).toBe(false)
  })
})

describe("loadModule with the platform's SHA-256 (PlatformServices.sha256Hex)", () => {
  /** The runtime with `realValidate`, and `sha256Hex` injected as the platform's (counting its calls into `hashes`). */
  const withPlatformHash = (t: TestEngine, hashes: { calls: number }, answer?: (bytes: Uint8Array) => string) =>
    AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
      Layer.provide(
        Layer.mergeAll(
          realValidate(t),
          testVerifierFor(t),
          layerPlatformServices({
            sha256Hex: (bytes) => {
              hashes.calls++
              return answer === undefined ? createHash("sha256").update(bytes).digest("hex") : answer(bytes)
            }
          })
        )
      )
    )

  /** Loads a small and a large module twice each (the second time from another, equal array); their ids and events. */
  const loadTwice = Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const small = yield* moduleBytes
    const large = padded(small, 100 * 1024).bytes
    return yield* collecting(
      Effect.gen(function* () {
        const ids: Array<string> = []
        for (const bytes of [small, large]) {
          ids.push(yield* runtime.loadModule(bytes, meta("m")))
          ids.push(yield* runtime.loadModule(Uint8Array.from(bytes), meta("m")))
        }
        return ids
      })
    )
  })

  it.effect("every load hashes once with it; a hit verifies, validates and compiles nothing; ids as without it", () =>
    Effect.gen(function* () {
      const t = makeTestEngine()
      const hashes = { calls: 0 }
      const [ids, events] = yield* Effect.provide(loadTwice, withPlatformHash(t, hashes))
      // its 3 known answers when the runtime is built (`Sha256.hasher`), then one hash per load, large bytes
      // included (no WebCrypto, no early read)
      expect(hashes.calls).toBe(3 + 4)
      expect(t.verifies).toBe(2)
      expect(t.validates).toBe(2)
      expect(t.compiles).toBe(0)
      expect(
        events.filter((e) => e._tag === "ModuleLoaded").map((e) => e._tag === "ModuleLoaded" && e.cacheHit)
      ).toEqual([false, true, false, true])
      // the same modules, the same ids, through the platform-free fallback
      const f = makeTestEngine()
      const [fallbackIds] = yield* Effect.provide(
        loadTwice,
        AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
          Layer.provide(Layer.mergeAll(realValidate(f), testVerifierFor(f)))
        )
      )
      expect(fallbackIds).toEqual(ids)
      expect(new Set(ids).size).toBe(2)
    })
  )

  it.effect("the verifier is handed the runtime's synchronous SHA-256 (VerifyHints.sha256HexNow): the platform's", () =>
    Effect.gen(function* () {
      const t = makeTestEngine()
      const hashes = { calls: 0 }
      const handed: Array<VerifyHints | undefined> = []
      const recording = Layer.succeed(ModuleVerifier, {
        verify: (bytes, _metadata, hints) =>
          Effect.sync(() => {
            handed.push(hints)
            return { hash: moduleHash(createHash("sha256").update(bytes).digest("hex")), keyId: "test" }
          })
      })
      const runtimeLayer = AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
        Layer.provide(
          Layer.mergeAll(
            realValidate(t),
            recording,
            layerPlatformServices({
              sha256Hex: (b) => {
                hashes.calls++
                return createHash("sha256").update(b).digest("hex")
              }
            })
          )
        )
      )
      const bytes = yield* moduleBytes
      yield* Effect.provide(
        Effect.gen(function* () {
          const runtime = yield* AgentRuntime
          return yield* runtime.loadModule(bytes, meta("m"))
        }),
        runtimeLayer
      )
      expect(handed).toHaveLength(1)
      const hint = handed[0]?.sha256HexNow
      expect(hint).toBeTypeOf("function")
      const other = new Uint8Array(200 * 1024).fill(7) // large: the platform's hash, not JavaScript's or WebCrypto's
      const before = hashes.calls
      expect(hint?.(other)).toBe(createHash("sha256").update(other).digest("hex"))
      expect(hashes.calls).toBe(before + 1)
    })
  )

  it.effect(
    "an injected hash that answers garbage is not trusted: the fallback hashes, loads are still cache hits",
    () =>
      Effect.gen(function* () {
        const t = makeTestEngine()
        const hashes = { calls: 0 }
        const [ids, events] = yield* Effect.provide(
          loadTwice,
          withPlatformHash(t, hashes, () => "0".repeat(63))
        )
        expect(hashes.calls).toBe(1) // its first known answer was wrong: never asked again

        expect(new Set(ids).size).toBe(2)
        expect(t.verifies).toBe(2)
        expect(
          events.filter((e) => e._tag === "ModuleLoaded").map((e) => e._tag === "ModuleLoaded" && e.cacheHit)
        ).toEqual([false, true, false, true])
      })
  )
})

describe("loadModule: one copy of the bytes (the runtime's), handed over to the repository", () => {
  it.effect("the repository keeps the runtime's copy; changing the caller's array afterwards changes neither", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const repo = yield* ModuleRepository
      const bytes = padded(yield* moduleBytes, 64 * 1024).bytes
      const original = Uint8Array.from(bytes)
      const id = yield* runtime.loadModule(bytes, meta("m"))
      const module = yield* runtime.getModule(id)
      const stored = yield* repo.load(id)
      expect(module.bytes === bytes).toBe(false) // the runtime's own copy
      expect(stored.bytes === module.bytes).toBe(true) // handed over: not copied again
      bytes.fill(0)
      expect(module.bytes).toEqual(original)
      expect(stored.bytes).toEqual(original)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})
