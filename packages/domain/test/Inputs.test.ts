import {
  AGENT_ID_MAX_LENGTH,
  agentId,
  AgentRuntimes,
  agentIdProblem,
  AgentRuntime,
  CompileError,
  compileErrorOf,
  createRuntime,
  forMessage,
  InvalidArgument,
  makeMetadata,
  moduleId,
  Trap,
  WasmEngine
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { readModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  capabilities,
  config,
  loadWith,
  makeTestEngine,
  MiB,
  runtimeLayer,
  testVerifier
} from "./support/TestEngine.js"

const fns = { add: { params: ["i32"], results: ["i32"] }, grow: { results: ["i32"] } }
const behaviour = {
  add: (_: unknown, [x]: ReadonlyArray<unknown>) => [x as number],
  grow: (ctx: { memoryBytes: number }) => {
    ctx.memoryBytes = MiB // at the budget's cap (1 MiB = 16 pages)
    return Effect.fail(new Trap({ function: "grow", reason: "unreachable" }))
  }
}
const MEGA_ID = "x".repeat(1_000_000)

const runtimeLayerOver = (engine: Layer.Layer<WasmEngine>, settings: Parameters<typeof runtimeLayer>[1] = {}) =>
  AgentRuntimes.layerMemory({ id: "rt-test", ...settings }).pipe(Layer.provide(Layer.mergeAll(engine, testVerifier)))

/** The test engine with other capabilities, recording the fuel of every call. */
const engineWith = (over: Partial<typeof capabilities>) => {
  const t = makeTestEngine()
  const fuel: Array<number | undefined> = []
  const engine: typeof t.engine = {
    ...t.engine,
    capabilities: { ...capabilities, ...over },
    instantiate: (compiled, options) =>
      Effect.map(t.engine.instantiate(compiled, options), (instance) => ({
        ...instance,
        prepare: undefined,
        invoke: (fn, args, o) => {
          fuel.push(o?.fuel)
          return instance.invoke(fn, args, o)
        }
      }))
  }
  return { t, fuel, layer: Layer.succeed(WasmEngine, engine) }
}

describe("agent ids (Ids.agentIdProblem)", () => {
  it("1..256 UTF-16 code units of printable characters", () => {
    expect(agentIdProblem("counter-1")).toBeUndefined()
    expect(agentIdProblem("ä🙂/é")).toBeUndefined()
    expect(agentIdProblem("a".repeat(AGENT_ID_MAX_LENGTH))).toBeUndefined()
    expect(agentIdProblem("")).toMatch(/must not be empty/)
    expect(agentIdProblem("a".repeat(AGENT_ID_MAX_LENGTH + 1))).toMatch(/at most 256/)
    expect(agentIdProblem("a\nb")).toMatch(/printable/)
    expect(agentIdProblem("a\u0000")).toMatch(/printable/)
    expect(agentIdProblem("\ud800")).toMatch(/printable/)
    expect(agentIdProblem(42)).toMatch(/must be a string, got number 42/)
  })

  it("forMessage cuts long strings and names the length", () => {
    const m = forMessage(MEGA_ID)
    expect(m.length).toBeLessThan(120)
    expect(m).toMatch(/1000000 UTF-16 code units/)
  })
})

describe("input validation of the public entry points", () => {
  it.effect(
    "invoke: null args, array-likes, throwing getters, non-string names, bad ids — typed errors, the agent stays Running",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "inputs", fns, behaviour)
        yield* runtime.spawnAgent(agentId("a"), m, config())
        const inv = (fn: unknown, args: unknown) =>
          Effect.flip(runtime.invoke(agentId("a"), fn as string, args as Array<number>))
        expect(yield* inv("add", null)).toMatchObject({
          _tag: "SignatureMismatch",
          index: -1,
          reason: "arguments must be an array, got null"
        })
        expect(yield* inv("add", { length: 1, 0: 5 })).toMatchObject({
          _tag: "SignatureMismatch",
          reason: "arguments must be an array, got object"
        })
        const getter: Array<number> = []
        Object.defineProperty(getter, 0, {
          get: () => {
            throw new Error("boom")
          },
          enumerable: true
        })
        expect(yield* inv("add", getter)).toMatchObject({
          _tag: "SignatureMismatch",
          reason: expect.stringMatching(/reading the arguments threw: "boom"/)
        })
        expect(yield* inv(42, [1])).toMatchObject({ _tag: "FunctionNotFound", function: "number 42" })
        expect(yield* inv({}, [1])).toMatchObject({ _tag: "FunctionNotFound", function: "object" })
        const big = yield* Effect.flip(runtime.invoke(agentId(MEGA_ID), "add", [1]))
        expect(big._tag).toBe("AgentNotFound")
        expect(big.message.length).toBeLessThan(200)
        expect((yield* Effect.flip(runtime.invoke(42 as never, "add", [1])))._tag).toBe("AgentNotFound")
        const info = yield* runtime.agent(agentId("a"))
        expect(info.state).toBe("Running")
        expect(info.errorCount).toBe(0) // nothing was blamed on the guest
        expect(yield* runtime.invoke(agentId("a"), "add", [5])).toEqual([5])
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect(
    "spawnAgent: null config, wrong field types, empty / long / unprintable ids → InvalidConfig, never echoed whole",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const m = yield* loadWith(t, "inputs", fns, behaviour)
        const spawn = (id: unknown, c: unknown) => Effect.flip(runtime.spawnAgent(id as never, m, c as never))
        expect(yield* spawn("a", null)).toMatchObject({
          _tag: "InvalidConfig",
          reason: expect.stringMatching(/config must be an object/)
        })
        expect(yield* spawn("a", { memoryLimit: "1MiB" })).toMatchObject({
          _tag: "InvalidConfig",
          reason: expect.stringMatching(/memoryLimit must be a number/)
        })
        expect(yield* spawn("a", { memoryLimit: MiB, fuel: "9" })).toMatchObject({
          _tag: "InvalidConfig",
          reason: expect.stringMatching(/fuel must be a number/)
        })
        expect(yield* spawn("a", { memoryLimit: MiB, autoStart: 1 })).toMatchObject({ _tag: "InvalidConfig" })
        expect(yield* spawn("", config())).toMatchObject({
          _tag: "InvalidConfig",
          reason: "an agent id must not be empty"
        })
        expect(yield* spawn("a\u0007", config())).toMatchObject({
          _tag: "InvalidConfig",
          reason: expect.stringMatching(/printable/)
        })
        const long = yield* spawn(MEGA_ID, config())
        expect(long._tag).toBe("InvalidConfig")
        expect(long.message.length).toBeLessThan(200)
        expect((yield* Effect.flip(runtime.spawnAgent(agentId("a"), 7 as never, config())))._tag).toBe("InvalidConfig")
        expect(yield* runtime.agents).toHaveLength(0)
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it.effect(
    "loadModule(null), bad metadata, evictAgent with an unknown reason → InvalidArgument; other ops refuse bad ids",
    () => {
      const t = makeTestEngine()
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const noBytes = yield* Effect.flip(runtime.loadModule(null as never, makeMetadata({ name: "x", version: "1" })))
        expect(noBytes).toBeInstanceOf(InvalidArgument)
        expect(noBytes).toMatchObject({ operation: "loadModule", argument: "bytes" })
        const bytes = yield* Effect.promise(() => wat(`(module)`))
        expect(yield* Effect.flip(runtime.loadModule(bytes, null as never))).toMatchObject({
          _tag: "InvalidArgument",
          argument: "metadata"
        })
        expect(yield* Effect.flip(runtime.loadModule(bytes, { name: "x" } as never))).toMatchObject({
          _tag: "InvalidArgument",
          argument: "metadata"
        })
        const m = yield* loadWith(t, "inputs", fns, behaviour)
        yield* runtime.spawnAgent(agentId("a"), m, config())
        const evict = yield* Effect.flip(runtime.evictAgent(agentId("a"), "NotAReason" as never))
        expect(evict).toMatchObject({ _tag: "InvalidArgument", operation: "evictAgent", argument: "reason" })
        expect(evict.message).toMatch(/expected one of MemoryPressure, HealthFailure/)
        expect((yield* runtime.agent(agentId("a"))).state).toBe("Running")
        for (const op of [
          runtime.pause,
          runtime.resume,
          runtime.stop,
          runtime.start,
          runtime.getHealth,
          runtime.agent,
          runtime.snapshot
        ]) {
          const e = yield* Effect.flip(
            (op as (id: unknown) => Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>)(
              MEGA_ID
            )
          )
          expect(e._tag).toBe("AgentNotFound")
          expect(e.message.length).toBeLessThan(200)
        }
        expect((yield* Effect.flip(runtime.evictAgent(null as never, "Manual")))._tag).toBe("AgentNotFound")
        expect((yield* Effect.flip(runtime.getModule(moduleId("nope"))))._tag).toBe("ModuleNotFound")
      }).pipe(Effect.provide(runtimeLayer(t)))
    }
  )

  it("the Promise facade rejects with the typed errors (no raw TypeError)", async () => {
    const t = makeTestEngine()
    const rt = await createRuntime({ engine: Layer.succeed(WasmEngine, t.engine), verifier: testVerifier })
    try {
      await expect(rt.loadModule(null as never, makeMetadata({ name: "x", version: "1" }))).rejects.toBeInstanceOf(
        InvalidArgument
      )
      await expect(rt.spawnAgent(agentId("a"), moduleId("m"), null as never)).rejects.toMatchObject({
        _tag: "InvalidConfig"
      })
      await expect(rt.invoke(agentId(""), "add", null as never)).rejects.toMatchObject({ _tag: "AgentNotFound" })
      await expect(rt.evictAgent(agentId("a"), "NotAReason" as never)).rejects.toMatchObject({
        _tag: "InvalidArgument"
      })
      await expect(rt.onEvent(null as never)).rejects.toMatchObject({ _tag: "InvalidArgument", operation: "onEvent" })
      await expect(rt.publish({ _tag: "Nope" } as never)).rejects.toMatchObject({
        _tag: "InvalidArgument",
        operation: "publish"
      })
    } finally {
      await rt.dispose()
    }
  })
})

describe("diagnostics", () => {
  it.effect("a trap while linear memory is at the agent's budget says so (Trap reason, lastError)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "inputs", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config())
      const e = yield* Effect.flip(runtime.invoke(agentId("a"), "grow"))
      expect(e).toMatchObject({ _tag: "Trap", function: "grow" })
      expect(e.message).toMatch(/unreachable — linear memory is at the agent's budget of 1048576 bytes \(cap\)/)
      expect((yield* runtime.agent(agentId("a"))).lastError).toMatch(/budget of 1048576 bytes \(cap\)/)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it.effect("every missing or mismatched import is reported at once (module, name, kind, expected type)", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const bytes = yield* Effect.promise(() =>
        wat(`(module
          (import "env" "a" (func (param i32) (result i32)))
          (import "env" "b" (func))
          (import "env" "memory" (memory 2 4))
          (import "env" "g" (global i64))
          (import "js" "c" (func (param f64))))`)
      )
      const m = yield* runtime.loadModule(bytes, makeMetadata({ name: "imports", version: "1.0.0" }))
      const smallMemory = { buffer: new ArrayBuffer(65_536) } // 1 page: below the import's minimum of 2
      const e = yield* Effect.flip(
        runtime.spawnAgent(
          agentId("i"),
          m,
          config(MiB, {
            imports: { env: { b: 5 as never, memory: smallMemory, g: 1 as never } }
          })
        )
      )
      expect(e._tag).toBe("InstantiationError")
      if (e._tag !== "InstantiationError") return
      expect(e.missing).toEqual([
        { module: "env", name: "a", kind: "function", expected: "(i32) -> (i32)", problem: "missing" },
        {
          module: "env",
          name: "b",
          kind: "function",
          expected: "() -> ()",
          problem: "expected a function, got number 5"
        },
        {
          module: "env",
          name: "memory",
          kind: "memory",
          expected: "memory 2..4 pages",
          problem: "has 1 pages, below the import's minimum of 2"
        },
        {
          module: "env",
          name: "g",
          kind: "global",
          expected: "global i64",
          problem: "expected a bigint or a global, got number 1"
        },
        { module: "js", name: "c", kind: "function", expected: "(f64) -> ()", problem: "missing" }
      ])
      expect(e.message).toMatch(/5 import\(s\) of agent "i" cannot be satisfied/)
      expect(e.message).toMatch(/"env"."memory" \(memory memory 2..4 pages\): has 1 pages/)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })

  it("CompileError carries the reader's kind and feature: unsupported says so", () => {
    const memory64 = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0x04, 1])
    const read = readModule(memory64)
    expect(read.ok).toBe(false)
    if (read.ok) return
    const e = compileErrorOf(read.error)
    expect(e).toBeInstanceOf(CompileError)
    expect(e).toMatchObject({ kind: "unsupported", feature: "memory64" })
    expect(e.message).toMatch(/unsupported: memory64/)
    expect(new CompileError({ reason: "bad", offset: 3 }).message).toBe("compile error at byte 3: bad")
  })

  it.effect("loadModule of a memory64 module: CompileError kind unsupported, feature memory64", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const memory64 = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0x04, 1])
      const e = yield* Effect.flip(runtime.loadModule(memory64, makeMetadata({ name: "m64", version: "1.0.0" })))
      expect(e).toMatchObject({ _tag: "CompileError", kind: "unsupported", feature: "memory64" })
      expect(e.message).toMatch(/unsupported: memory64/)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})

describe("limits.defaultFuel (engines that cannot preempt)", () => {
  /** Spawns an agent under these capabilities and settings and calls it once: the fuel of that call. */
  const fuelOf = (over: Partial<typeof capabilities>, settings: Parameters<typeof runtimeLayer>[1], extra = {}) => {
    const { t, fuel, layer } = engineWith(over)
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "inputs", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config(MiB, extra))
      yield* runtime.invoke(agentId("a"), "add", [1])
      return fuel.at(-1)
    }).pipe(Effect.provide(runtimeLayerOver(layer, settings)))
  }

  it.effect("a config without fuel nor timeoutMs gets the default fuel (10^9 by default)", () =>
    Effect.gen(function* () {
      expect(yield* fuelOf({ fuel: true }, {})).toBe(1_000_000_000)
      expect(yield* fuelOf({ fuel: true }, { limits: { defaultFuel: 5_000 } })).toBe(5_000)
      expect(yield* fuelOf({ fuel: true }, {}, { fuel: 77 })).toBe(77)
    })
  )

  it.effect(
    "with the default disabled, such a config is refused (InvalidConfig); preemptive and precompiled engines are not concerned",
    () =>
      Effect.gen(function* () {
        const refused = yield* Effect.flip(fuelOf({ fuel: true }, { limits: { defaultFuel: false } }))
        expect(refused).toMatchObject({
          _tag: "InvalidConfig",
          reason: expect.stringMatching(/defaultFuel is disabled/)
        })
        expect(
          yield* fuelOf({ fuel: true, preemptiveTimeout: true }, { limits: { defaultFuel: false } })
        ).toBeUndefined()
        expect(yield* fuelOf({ fuel: true, runtimeCompile: false }, {})).toBeUndefined()
        expect(yield* fuelOf({ fuel: false }, {})).toBeUndefined()
      })
  )
})
