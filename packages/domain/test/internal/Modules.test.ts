import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { createHash } from "node:crypto"
import {
  AgentRuntime,
  AgentRuntimes,
  createRuntime,
  EventBus,
  EventBuses,
  layerPlatformServices,
  makeMetadata,
  ModuleLoaded,
  type ModuleMetadata,
  type RuntimeEvent,
  WasmEngine
} from "../../src/index.js"
import { synchronousLoads } from "../../src/internal/Modules.js"
import { makeTestEngine, type TestEngine, testVerifierFor, watModule } from "../support/TestEngine.js"

/**
 * `loadModule`'s synchronous cache hit (`internal/Modules.ts` `loadNow`): a
 * hit the runtime can answer in the caller's step (synchronous hash, a
 * verified and registered module, a bus that publishes synchronously) is
 * answered without an effect — by the Promise facade without `runPromise`.
 * Every test compares it with the path that runs effects: the same ids,
 * errors, events (in order) and verifier/engine work.
 */

const fns = { add: { params: ["i32"], results: ["i32"] } }
const meta = (name: string, version = "1.0.0", extra: { author?: string; signature?: Uint8Array } = {}) =>
  makeMetadata({ name, version, ...extra })

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

const platformHash = layerPlatformServices({ sha256Hex: (b) => createHash("sha256").update(b).digest("hex") })

/** An in-memory bus whose `publish` is replaced by a wrapper: not known to be synchronous (`publishNow` is undefined). */
const wrappedBus = Layer.effect(
  EventBus,
  Effect.map(EventBuses.makeMemory, (bus) => ({
    ...bus,
    publish: (e: Parameters<typeof bus.publish>[0]) => bus.publish(e)
  }))
)

const service = Effect.gen(function* () {
  return yield* AgentRuntime
})

type Outcome = { readonly ok: string } | { readonly error: string; readonly message: string }

const outcomeOf = (e: unknown): Outcome => {
  const err = e as { _tag?: string; message?: string }
  return { error: String(err._tag), message: String(err.message) }
}

/** What a `ModuleLoaded` says, without its timestamp and with its event id's sequence number only. */
const loadedView = (e: RuntimeEvent) =>
  e._tag === "ModuleLoaded"
    ? {
        seq: e.eventId.split(":").pop(),
        moduleId: e.moduleId,
        moduleHash: e.moduleHash,
        size: e.size,
        exports: [...e.exports],
        cacheHit: e.cacheHit,
        timestamp: typeof e.timestamp
      }
    : { tag: e._tag }

/** A runtime driven through Promises: `load` as the path under test calls it, its events, and `t`'s counters. */
interface Driven {
  readonly t: TestEngine
  readonly load: (bytes: unknown, metadata: unknown) => Promise<Outcome>
  readonly events: Array<RuntimeEvent>
  readonly dispose: () => Promise<void>
}

/** The Promise facade (`createRuntime`) on the test engine with the platform's SHA-256 and `ports`. */
const facade = async (ports: Layer.Layer<never> | Layer.Layer<any> = Layer.empty): Promise<Driven> => {
  const t = makeTestEngine()
  const rt = await createRuntime({
    engine: Layer.succeed(WasmEngine, t.engine),
    verifier: testVerifierFor(t),
    settings: { id: "rt-test" },
    ports: Layer.merge(platformHash, ports as Layer.Layer<never>)
  })
  const events: Array<RuntimeEvent> = []
  const stop = await rt.onEvent((e) => events.push(e))
  return {
    t,
    events,
    load: (bytes, metadata) =>
      rt.loadModule(bytes as Uint8Array, metadata as ModuleMetadata).then(
        (ok) => ({ ok }),
        (e) => outcomeOf(e)
      ),
    dispose: async () => {
      stop()
      await rt.dispose()
    }
  }
}

/** The Effect API (`runtime.loadModule` run by a `ManagedRuntime`), optionally under a tracer. */
const effectApi = async (tracer?: Tracer.Tracer): Promise<Driven> => {
  const t = makeTestEngine()
  const managed = ManagedRuntime.make(
    AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
      Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, t.engine), testVerifierFor(t), platformHash))
    )
  )
  const runtime = await managed.runPromise(service)
  const events: Array<RuntimeEvent> = []
  let subscribed!: () => void
  const ready = new Promise<void>((resolve) => (subscribed = resolve))
  const collector = managed.runFork(
    Effect.scoped(
      Effect.gen(function* () {
        const stream = yield* runtime.events
        subscribed()
        yield* Stream.runForEach(stream, (e) => Effect.sync(() => void events.push(e)))
      })
    )
  )
  await ready
  return {
    t,
    events,
    load: async (bytes, metadata) => {
      const load = runtime.loadModule(bytes as Uint8Array, metadata as ModuleMetadata)
      const exit = await managed.runPromiseExit(tracer === undefined ? load : Effect.withTracer(load, tracer))
      return Exit.isSuccess(exit) ? { ok: exit.value } : outcomeOf(Exit.isFailure(exit) ? failureOf(exit) : undefined)
    },
    dispose: async () => {
      await managed.runPromise(Fiber.interrupt(collector))
      await managed.dispose()
    }
  }
}

const failureOf = (exit: Exit.Failure<unknown, unknown>): unknown => {
  const found = Cause.findError(exit.cause)
  return found._tag === "Success" ? found.success : Cause.squash(exit.cause)
}

/**
 * One script of loads covering every outcome of `loadModule`: a cold load,
 * hits (same array, equal array), other metadata (verified again), a name the
 * verifier refuses, malformed bytes, bad input, a revoked and re-trusted key,
 * a large module; its outcomes in order.
 */
const script = async (d: Driven, small: Uint8Array, large: Uint8Array): Promise<Array<Outcome>> => {
  const out: Array<Outcome> = []
  const step = async (bytes: unknown, metadata: unknown) => out.push(await d.load(bytes, metadata))
  await step(small, meta("m"))
  await step(small, meta("m"))
  await step(Uint8Array.from(small), meta("m"))
  await step(small, meta("m", "2.0.0"))
  await step(small, meta("m", "2.0.0"))
  await step(small, meta("evil"))
  await step(small, meta("m", "1.0.0", { signature: new Uint8Array([1, 2, 3]) }))
  await step(small, meta("m", "1.0.0", { signature: new Uint8Array([1, 2, 3]) }))
  await step(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0xff]), meta("bad"))
  await step([0, 97, 115, 109], meta("m"))
  await step(small, { name: "m", version: "1.0.0" })
  await step(small, meta("k", "1.0.0", { author: "k1" }))
  await step(small, meta("k", "1.0.0", { author: "k1" }))
  d.t.revoked.add("k1")
  await step(small, meta("k", "1.0.0", { author: "k1" }))
  d.t.revoked.delete("k1")
  await step(small, meta("k", "1.0.0", { author: "k1" }))
  await step(small, meta("k", "1.0.0", { author: "k1" }))
  await step(large, meta("big"))
  await step(large, meta("big"))
  await step(Uint8Array.from(large), meta("big"))
  return out
}

/** Runs `script` on a fresh `make()` runtime and returns what it observed (events after they settle). */
const observe = async (make: () => Promise<Driven>, small: Uint8Array, large: Uint8Array) => {
  const d = await make()
  try {
    const outcomes = await script(d, small, large)
    await new Promise((r) => setTimeout(r, 20))
    return {
      outcomes,
      events: d.events.map(loadedView),
      verifies: d.t.verifies,
      validates: d.t.validates,
      compiles: d.t.compiles
    }
  } finally {
    await d.dispose()
  }
}

describe("loadModule's synchronous cache hit (loadNow): equivalent to the effectful path", () => {
  it("the Promise facade, the Effect API, a bus that is not synchronous and a traced call agree on every outcome and event", async () => {
    const small = await wat(watModule(fns))
    const large = padded(small, 100 * 1024)
    const fast = await observe(() => facade(), small, large)
    const slowBus = await observe(() => facade(wrappedBus), small, large)
    const viaEffect = await observe(() => effectApi(), small, large)
    const names: Array<string> = []
    const recording = Tracer.make({
      span: (options) => {
        names.push(options.name)
        return new Tracer.NativeSpan(options)
      }
    })
    const traced = await observe(() => effectApi(recording), small, large)
    expect(slowBus).toEqual(fast)
    expect(viaEffect).toEqual(fast)
    expect(traced).toEqual(fast)
    // the traced calls took the span path: one AgentRuntime.loadModule span per call (hits included)
    expect(names.filter((n) => n === "AgentRuntime.loadModule")).toHaveLength(fast.outcomes.length)
    // what the script should give
    const tags = fast.outcomes.map((o) => ("ok" in o ? "ok" : o.error))
    expect(tags).toEqual([
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "InvalidSignature",
      "ok",
      "ok",
      "CompileError",
      "InvalidArgument",
      "InvalidArgument",
      "ok",
      "ok",
      "InvalidSignature",
      "ok",
      "ok",
      "ok",
      "ok",
      "ok"
    ])
    expect(fast.events.map((e) => ("cacheHit" in e ? e.cacheHit : e))).toEqual([
      false, // cold
      true,
      true,
      true, // 2.0.0: verified again, not parsed or validated: announced as a cache hit
      true,
      true, // detached signature: verified again
      true,
      true, // k1
      true,
      true, // k1 trusted again: verified again
      true,
      false, // large, cold
      true,
      true
    ])
    // m, 2.0.0, evil, signature, the malformed bytes, k1, k1 revoked, k1 again, large; none for a hit
    expect(fast.verifies).toBe(9)
    expect(fast.validates).toBe(2) // small and large, once each
    expect(fast.compiles).toBe(0)
  })

  it("the Promise facade with a tracer in its layers runs every load as an effect: each call is a span, hits included", async () => {
    const names: Array<string> = []
    const recording = Tracer.make({
      span: (options) => {
        names.push(options.name)
        return new Tracer.NativeSpan(options)
      }
    })
    const d = await facade(Layer.succeed(Tracer.Tracer, recording))
    try {
      const bytes = await wat(watModule(fns))
      const first = await d.load(bytes, meta("m"))
      expect(await d.load(bytes, meta("m"))).toEqual(first)
      expect(await d.load(bytes, meta("m"))).toEqual(first)
      expect(names.filter((n) => n === "AgentRuntime.loadModule")).toHaveLength(3)
    } finally {
      await d.dispose()
    }
  })

  it("a hit on a synchronous bus is answered without an effect, its ModuleLoaded delivered before it returns", async () => {
    const t = makeTestEngine()
    const managed = ManagedRuntime.make(
      AgentRuntimes.layerMemory({ id: "rt-test" }).pipe(
        Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, t.engine), testVerifierFor(t), platformHash))
      )
    )
    try {
      const runtime = await managed.runPromise(service)
      const bus = await managed.runPromise(
        Effect.gen(function* () {
          return yield* EventBus
        })
      )
      const loadNow = synchronousLoads.get(runtime)!
      expect(loadNow).toBeTypeOf("function")
      const bytes = await wat(watModule(fns))
      const cold = loadNow(bytes, meta("m"))
      expect(Effect.isEffect(cold)).toBe(true) // a cold load needs effects
      const id = await managed.runPromise(cold as Effect.Effect<string, unknown>) // ModuleLoaded #1 (no subscriber)
      // a hit nobody would receive the event of: no event built, no event id taken (EventBuses.wants)
      expect(EventBuses.wants(bus, "ModuleLoaded")).toBe(false)
      expect(loadNow(bytes, meta("m"))).toBe(id)
      // a subscriber's queue holds the hit's event as soon as loadNow returns
      const seen = await managed.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const stream = yield* bus.subscribe
            const hit = loadNow(bytes, meta("m"))
            expect(hit).toBe(id)
            const first = yield* Stream.runHead(stream)
            return first
          })
        )
      )
      expect(seen._tag).toBe("Some")
      const event = (seen as { value: ModuleLoaded }).value
      expect(event).toBeInstanceOf(ModuleLoaded)
      // the same keys, order and JSON as the class's constructor makes
      const made = new ModuleLoaded({
        eventId: event.eventId,
        timestamp: event.timestamp,
        runtimeId: event.runtimeId,
        moduleId: event.moduleId,
        moduleHash: event.moduleHash,
        size: event.size,
        exports: event.exports,
        cacheHit: event.cacheHit
      })
      expect(Object.keys(event)).toEqual(Object.keys(made))
      expect(JSON.stringify(event)).toBe(JSON.stringify(made))
      expect(event.cacheHit).toBe(true)
      expect(event.eventId.endsWith(":2")).toBe(true) // the id after the cold load's
      // bad input is the effect that fails with InvalidArgument, never a throw
      const bad = loadNow("nope" as unknown as Uint8Array, meta("m"))
      expect(Effect.isEffect(bad)).toBe(true)
      const exit = await managed.runPromiseExit(bad as Effect.Effect<string, { _tag: string }>)
      expect(Exit.isFailure(exit) && (failureOf(exit) as { _tag: string })._tag).toBe("InvalidArgument")
    } finally {
      await managed.dispose()
    }
  })

  it("EventBus.publishNow: the in-memory bus only, delivering as publish does; a wrapper that replaces publish has none", async () => {
    const bus = Effect.runSync(EventBuses.makeMemory)
    expect(EventBuses.publishNow(bus)).toBeTypeOf("function")
    expect(EventBuses.publishNow({ ...bus, publish: (e) => bus.publish(e) })).toBeUndefined()
    const ev = (n: number) =>
      new ModuleLoaded({
        eventId: `rt:x:${n}`,
        timestamp: n,
        runtimeId: "rt",
        moduleId: `m@1#${n}`,
        moduleHash: "h",
        size: n,
        exports: [],
        cacheHit: true
      } as never)
    const got = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const stream = yield* bus.subscribe
          const now = EventBuses.publishNow(bus)!
          yield* bus.publish(ev(1))
          now(ev(2))
          yield* bus.publish(ev(3))
          now(ev(4))
          return yield* Stream.runCollect(Stream.take(stream, 4))
        })
      )
    )
    expect([...got].map((e) => (e as ModuleLoaded).size)).toEqual([1, 2, 3, 4])
  })
})
