/**
 * `loadModule` under concurrency and with unusable input (`internal/Modules.ts`):
 * concurrent cold loads of the same bytes are one load (one verification,
 * one read, one validation or compile; the others report a cache hit), a
 * failure reaches every waiter of the same load with the same typed error
 * and is not cached, interrupting one caller cancels nobody else's load;
 * bytes whose ArrayBuffer is detached are `InvalidArgument`, not a defect.
 */
import {
  AgentRuntime,
  AgentRuntimes,
  CompileError,
  createRuntime,
  layerPlatformServices,
  makeMetadata,
  type ModuleLoaded,
  ModuleVerifier,
  WasmEngine
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import { collecting, makeTestEngine, type TestEngine, testVerifierFor, watModule } from "./support/TestEngine.js"

const moduleBytes = Effect.promise(() => wat(watModule({ add: { params: ["i32"], results: ["i32"] } })))
const meta = (name: string, version = "1.0.0") => makeMetadata({ name, version })
const N = 30

/** `bytes` with a custom section of `size` bytes after the header: another, larger, valid module. */
const padded = (bytes: Uint8Array, size: number): Uint8Array => {
  const name = [0x03, 0x70, 0x61, 0x64] // "pad"
  const leb: Array<number> = []
  for (let n = name.length + size; ; ) {
    const b = n & 0x7f
    n >>>= 7
    if (n === 0) {
      leb.push(b)
      break
    }
    leb.push(b | 0x80)
  }
  const section = [0x00, ...leb, ...name]
  const out = new Uint8Array(bytes.length + section.length + size).fill(0x5a)
  out.set(bytes.subarray(0, 8))
  out.set(section, 8)
  out.set(bytes.subarray(8), 8 + section.length + size)
  return out
}

type Hashing = "javascript" | "platform" | "webcrypto"

/**
 * A runtime on the test engine (`compile`: without `validate`, so loads
 * compile), its verifier counting into `t`; `hashing` says how bytes are
 * hashed: the platform's SHA-256 injected, or the fallback routes. The
 * engine's `validate` yields before it answers (as a real one on another
 * thread would; `compile` already does), so concurrent loads overlap.
 */
const layerFor = (
  t: TestEngine,
  options: { hashing?: Hashing; compile?: boolean; verifier?: Layer.Layer<ModuleVerifier> } = {}
) => {
  const { validate, ...compiling } = t.engine
  const engine = Layer.succeed(
    WasmEngine,
    options.compile === true
      ? compiling
      : { ...t.engine, validate: (bytes: Uint8Array) => Effect.andThen(Effect.yieldNow, validate!(bytes)) }
  )
  const platform =
    options.hashing === "platform"
      ? layerPlatformServices({ sha256Hex: (b) => createHash("sha256").update(b).digest("hex") })
      : Layer.empty
  return AgentRuntimes.layerMemory({ id: "rt-concurrent" }).pipe(
    Layer.provide(Layer.mergeAll(engine, options.verifier ?? testVerifierFor(t), platform))
  )
}

const loadedEvents = (events: ReadonlyArray<{ readonly _tag: string }>) =>
  events.filter((e): e is ModuleLoaded => e._tag === "ModuleLoaded")

describe("concurrent cold loads of the same bytes are one load", () => {
  const cases: ReadonlyArray<{ readonly hashing: Hashing; readonly size: number; readonly compile: boolean }> = [
    { hashing: "javascript", size: 0, compile: false },
    { hashing: "platform", size: 0, compile: true },
    { hashing: "platform", size: 200 * 1024, compile: false },
    { hashing: "webcrypto", size: 200 * 1024, compile: false }, // hashed off the thread, read early
    { hashing: "webcrypto", size: 200 * 1024, compile: true }
  ]
  for (const { compile, hashing, size } of cases) {
    it.effect(
      `${N} loads at once (${hashing} SHA-256, ${size} padding bytes, ${compile ? "compile" : "validate"})`,
      () => {
        const t = makeTestEngine()
        return Effect.gen(function* () {
          const runtime = yield* AgentRuntime
          const base = yield* moduleBytes
          const bytes = size === 0 ? base : padded(base, size)
          const [ids, events] = yield* collecting(
            Effect.all(
              Array.from({ length: N }, (_, i) =>
                runtime.loadModule(i % 2 === 0 ? bytes : Uint8Array.from(bytes), meta("m"))
              ),
              { concurrency: "unbounded" }
            )
          )
          expect(new Set(ids).size).toBe(1)
          expect(t.verifies).toBe(1)
          expect(t.validates).toBe(compile ? 0 : 1)
          expect(t.compiles).toBe(compile ? 1 : 0)
          const loaded = loadedEvents(events)
          expect(loaded).toHaveLength(N)
          expect(loaded.filter((e) => !e.cacheHit)).toHaveLength(1)
          expect(loaded[0]!.cacheHit).toBe(false)
          const stats = yield* runtime.stats
          expect(stats.modules).toBe(1)
          expect(stats.cache.loads).toBe(1)
          // later loads are plain hits
          expect(yield* runtime.loadModule(bytes, meta("m"))).toBe(ids[0])
          expect(t.verifies).toBe(1)
        }).pipe(Effect.provide(layerFor(t, { hashing, compile })))
      }
    )
  }

  it.effect(
    "loads of the same bytes under other metadata wait, then verify only (no second read or validation)",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const bytes = yield* moduleBytes
        const ids = yield* Effect.all(
          Array.from({ length: 10 }, (_, i) => runtime.loadModule(bytes, meta("m", `1.0.${i % 2}`))),
          { concurrency: "unbounded" }
        )
        expect(new Set(ids).size).toBe(2)
        expect(t.verifies).toBe(2)
        expect(t.validates).toBe(1)
        expect((yield* runtime.stats).modules).toBe(2)
      }).pipe(Effect.provide(layerFor(t)))
    }
  )

  it.live(
    "a failure reaches every waiter with the same typed error, is not cached, and a later load tries again",
    () => {
      const t = makeTestEngine()
      let refuse = true
      const engine = Layer.succeed(WasmEngine, {
        ...t.engine,
        validate: () =>
          Effect.suspend(() => {
            t.validates++
            return refuse ? Effect.fail(new CompileError({ reason: "refused by the engine" })) : Effect.void
          }).pipe(Effect.delay("1 millis"))
      })
      const layer = AgentRuntimes.layerMemory({ id: "rt-fail" }).pipe(
        Layer.provide(Layer.mergeAll(engine, testVerifierFor(t)))
      )
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const bytes = yield* moduleBytes
        const exits = yield* Effect.all(
          Array.from({ length: N }, () => Effect.exit(runtime.loadModule(bytes, meta("m")))),
          { concurrency: "unbounded" }
        )
        const errors = exits.map((e) => (Exit.isFailure(e) ? e.cause : undefined))
        expect(errors.every((c) => c !== undefined)).toBe(true)
        const failures = exits.map((e) => Exit.findErrorOption(e))
        const first = failures[0]!
        expect(first._tag === "Some" && first.value._tag).toBe("CompileError")
        for (const f of failures) expect(f).toEqual(first)
        expect(t.verifies).toBe(1)
        expect(t.validates).toBe(1)
        expect((yield* runtime.stats).modules).toBe(0)
        // not cached: the next load runs again and, the engine now accepting, loads
        refuse = false
        const id = yield* runtime.loadModule(bytes, meta("m"))
        expect(id).toContain("m@1.0.0")
        expect(t.verifies).toBe(2)
        expect(t.validates).toBe(2)
      }).pipe(Effect.provide(layer))
    }
  )

  it.effect("a waiter asking for another load (other metadata) gets its own outcome, not the failed one's", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* moduleBytes
      // the test verifier refuses the name "evil"
      const [bad, good] = yield* Effect.all(
        [Effect.flip(runtime.loadModule(bytes, meta("evil"))), runtime.loadModule(bytes, meta("fine"))],
        { concurrency: "unbounded" }
      )
      expect(bad._tag).toBe("InvalidSignature")
      expect(good).toContain("fine@1.0.0")
    }).pipe(Effect.provide(layerFor(t)))
  })

  it.effect("interrupting the caller that started the load (or any waiter) does not cancel it for the others", () => {
    const t = makeTestEngine()
    const gate = Deferred.makeUnsafe<void>()
    let verifyStarted = 0
    const verifier = Layer.succeed(ModuleVerifier, {
      verify: (bytes, metadata) =>
        Effect.gen(function* () {
          t.verifies++
          verifyStarted++
          yield* Deferred.await(gate)
          return { hash: createHash("sha256").update(bytes).digest("hex") as never, keyId: metadata.author ?? "test" }
        })
    })
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* moduleBytes
      const leader = yield* Effect.forkChild(runtime.loadModule(bytes, meta("m")))
      while (verifyStarted === 0) yield* Effect.yieldNow
      const waiters = yield* Effect.forEach(Array.from({ length: 5 }), () =>
        Effect.forkChild(runtime.loadModule(bytes, meta("m")))
      )
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      yield* Fiber.interrupt(leader)
      yield* Fiber.interrupt(waiters[0]!)
      expect(Exit.hasInterrupts(yield* Fiber.await(leader))).toBe(true)
      yield* Deferred.succeed(gate, undefined)
      const ids = yield* Effect.forEach(waiters.slice(1), Fiber.join)
      expect(new Set(ids).size).toBe(1)
      expect(t.verifies).toBe(1)
      expect(t.validates).toBe(1)
      expect((yield* runtime.stats).modules).toBe(1)
    }).pipe(Effect.provide(layerFor(t, { verifier })))
  })
})

describe("loadModule works on its own copy of the caller's bytes, taken when the load starts", () => {
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
  for (const hashing of ["javascript", "platform", "webcrypto"] as const) {
    it.effect(
      `bytes changed while the load waits for another load of them are not registered under their first hash (${hashing} SHA-256)`,
      () => {
        const t = makeTestEngine()
        const gate = Deferred.makeUnsafe<void>()
        let verifyStarted = 0
        const verifier = Layer.succeed(ModuleVerifier, {
          verify: (bytes, metadata) =>
            Effect.gen(function* () {
              t.verifies++
              if (verifyStarted++ === 0) yield* Deferred.await(gate)
              return { hash: sha(bytes) as never, keyId: metadata.author ?? "test" }
            })
        })
        return Effect.gen(function* () {
          const runtime = yield* AgentRuntime
          const a = padded(yield* moduleBytes, hashing === "webcrypto" ? 200 * 1024 : 64)
          const mine = Uint8Array.from(a)
          const leader = yield* Effect.forkChild(runtime.loadModule(a, meta("m")))
          while (verifyStarted === 0) yield* Effect.yieldNow
          // the same bytes under other metadata: waits for the leader's load, then verifies only
          const waiter = yield* Effect.forkChild(runtime.loadModule(mine, meta("m", "2.0.0")))
          for (let i = 0; i < 10; i++) yield* Effect.yieldNow
          // the caller changes its bytes (a padding byte: still a valid module, another hash) while its load waits
          mine[20] = mine[20]! ^ 0xff
          const b = Uint8Array.from(mine)
          yield* Deferred.succeed(gate, undefined)
          const first = yield* Fiber.join(leader)
          const second = yield* Fiber.join(waiter)
          // what the waiter registered is the bytes it was given (a's), not the changed ones
          expect(second).toBe(`m@2.0.0#${sha(a).slice(0, 12)}`)
          // the load entry of a's hash still leads to a's module: no entry maps a's hash to b's
          expect(yield* runtime.loadModule(Uint8Array.from(a), meta("m"))).toBe(first)
          expect(yield* runtime.loadModule(Uint8Array.from(a), meta("m", "2.0.0"))).toBe(second)
          // b is a module of its own
          expect(yield* runtime.loadModule(b, meta("m", "2.0.0"))).toBe(`m@2.0.0#${sha(b).slice(0, 12)}`)
        }).pipe(Effect.provide(layerFor(t, { verifier, hashing })))
      }
    )
  }
})

describe("loadModule of a view of a SharedArrayBuffer written by another thread", () => {
  it.effect("hashes its own copy: bytes changed right after the caller's were hashed are not registered", () => {
    const t = makeTestEngine()
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
    let shared: Uint8Array | undefined
    // the platform's SHA-256, then — as another thread could at that moment — a write into the caller's shared bytes
    const platform = layerPlatformServices({
      sha256Hex: (b) => {
        const hex = sha(b)
        if (shared !== undefined) shared[20] = shared[20]! ^ 0xff
        return hex
      }
    })
    const layer = AgentRuntimes.layerMemory({ id: "rt-shared" }).pipe(
      Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, t.engine), testVerifierFor(t), platform))
    )
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const a = padded(yield* moduleBytes, 64)
      shared = new Uint8Array(new SharedArrayBuffer(a.byteLength))
      shared.set(a)
      const id = yield* runtime.loadModule(shared, meta("m"))
      expect(shared[20]).not.toBe(a[20]) // the caller's bytes did change
      // what was registered is what was hashed, verified and named: a's bytes under a's hash
      expect(id).toBe(`m@1.0.0#${sha(a).slice(0, 12)}`)
      shared = undefined
      expect(yield* runtime.loadModule(Uint8Array.from(a), meta("m"))).toBe(id)
    }).pipe(Effect.provide(layer))
  })
})

describe("loadModule of bytes whose ArrayBuffer is detached", () => {
  const detach = (bytes: Uint8Array): Uint8Array => {
    const copy = Uint8Array.from(bytes)
    structuredClone(copy.buffer, { transfer: [copy.buffer] })
    return copy
  }

  for (const hashing of ["javascript", "platform"] as const) {
    it.effect(`is InvalidArgument (bytes), not a TypeError defect (${hashing} SHA-256; a view, a subarray)`, () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const bytes = yield* moduleBytes
        const whole = detach(bytes)
        expect(whole.byteLength).toBe(0)
        const subarrayBuffer = Uint8Array.from(bytes)
        const view = subarrayBuffer.subarray(8, 20)
        structuredClone(subarrayBuffer.buffer, { transfer: [subarrayBuffer.buffer] })
        for (const input of [whole, view]) {
          const exit = yield* Effect.exit(runtime.loadModule(input, meta("m")))
          expect(Exit.isFailure(exit)).toBe(true)
          const error = Exit.findErrorOption(exit)
          expect(error._tag).toBe("Some")
          expect(error._tag === "Some" && error.value).toMatchObject({
            _tag: "InvalidArgument",
            operation: "loadModule",
            argument: "bytes"
          })
        }
        // an empty array that is not detached is what it was: bytes that are not a module
        const empty = yield* Effect.flip(runtime.loadModule(new Uint8Array(0), meta("m")))
        expect(empty._tag).not.toBe("InvalidArgument")
        // and the runtime goes on loading
        expect(yield* runtime.loadModule(bytes, meta("m"))).toContain("m@1.0.0")
        expect(t.verifies).toBe(2)
      }).pipe(Effect.provide(layerFor(t, { hashing })))
    })
  }

  it("the Promise facade rejects with the same InvalidArgument", async () => {
    const t = makeTestEngine()
    const bytes = await wat(watModule({ add: { params: ["i32"], results: ["i32"] } }))
    const runtime = await createRuntime({
      engine: Layer.succeed(WasmEngine, t.engine),
      verifier: testVerifierFor(t),
      settings: { id: "rt-facade" },
      ports: layerPlatformServices({ sha256Hex: (b) => createHash("sha256").update(b).digest("hex") })
    })
    try {
      await expect(runtime.loadModule(detach(bytes), meta("m"))).rejects.toMatchObject({ _tag: "InvalidArgument" })
      expect(await runtime.loadModule(bytes, meta("m"))).toContain("m@1.0.0")
    } finally {
      await runtime.dispose()
    }
  })
})
