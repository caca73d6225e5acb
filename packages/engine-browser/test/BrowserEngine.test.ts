/**
 * The browser engine on its own, in real Chromium: capabilities and their
 * reasons, timeouts reported at the deadline while the page keeps running,
 * fuel (exact stop), a worker that dies, bad modules and imports, WASI.
 */
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  callResults,
  type EngineInvokeError,
  type InvokeOutcome,
  makeCallSlot,
  makeMetadata,
  moduleHash,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import { verifierLayer } from "@agent-runtime/conformance"
import { wat } from "@agent-runtime/test-support"
import { instrumentFuel, rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { BrowserEngine } from "../src/index.js"
import { agentBytes } from "./fixtures.js"

const MiB = 1024 * 1024
const hash = moduleHash("0".repeat(64))

const withEngine = <A, E>(
  options: BrowserEngine.BrowserEngineOptions,
  body: (engine: BrowserEngine.BrowserEngineShape) => Effect.Effect<A, E>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(Layer.orDie(BrowserEngine.layerWith(options)))
      return yield* body(Context.get(context, BrowserEngine.BrowserEngine))
    })
  )

const spawn = (engine: BrowserEngine.BrowserEngineShape, name: string, bytes: Uint8Array, imports = {}) =>
  Effect.gen(function* () {
    const compiled = yield* engine.compile(bytes, hash)
    return yield* engine.instantiate(compiled, { agentId: agentId(name), memoryLimit: 16 * MiB, imports })
  })

/** Counts timer ticks on the page while `effect` runs: proof the page's event loop is not blocked. */
const ticksDuring = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    let ticks = 0
    const timer = setInterval(() => ticks++, 10)
    const started = performance.now()
    const result = yield* Effect.result(effect)
    const elapsed = performance.now() - started
    clearInterval(timer)
    return { result, ticks, elapsed }
  })

describe("BrowserEngine: capabilities", () => {
  it.effect("on a cross-origin isolated page agents run in workers: workers, preemptiveTimeout and sharedMemory", () =>
    withEngine({}, (engine) =>
      Effect.sync(() => {
        expect(engine.environment.crossOriginIsolated).toBe(true)
        expect(engine.mode).toBe("workers")
        expect(engine.platform).toBe("Browser")
        expect(engine.capabilities).toEqual({
          workers: true,
          preemptiveTimeout: true,
          fuel: true,
          wasi: true,
          sharedMemory: true,
          runtimeCompile: true,
          snapshots: true,
          // recovery tracking is on by default: the engine asks for the write barrier
          dirtyPages: true
        })
        expect(engine.reasons.workers).toMatch(/cross-origin isolated/)
      })
    )
  )

  it.effect("in-page mode: no workers, no preemption, and the reasons say why", () =>
    withEngine({ mode: "inPage" }, (engine) =>
      Effect.sync(() => {
        expect(engine.mode).toBe("inPage")
        expect(engine.capabilities.workers).toBe(false)
        expect(engine.capabilities.preemptiveTimeout).toBe(false)
        expect(engine.capabilities.fuel).toBe(true)
      })
    )
  )

  it.effect(
    "asking for workers on a page that is not isolated fails with BrowserUnsupported naming the COOP/COEP headers",
    () =>
      Effect.gen(function* () {
        const notIsolated = { ...BrowserEngine.detect(), crossOriginIsolated: false }
        const reasons = BrowserEngine.explain(notIsolated)
        expect(reasons.workers).toMatch(/Cross-Origin-Opener-Policy: same-origin/)
        expect(reasons.workers).toMatch(/Cross-Origin-Embedder-Policy: require-corp/)
        const caps = BrowserEngine.capabilitiesFor(notIsolated, "inPage")
        const e = yield* Effect.flip(BrowserEngine.requireCapabilities(caps, { preemptiveTimeout: true }, notIsolated))
        expect(e._tag).toBe("BrowserUnsupported")
        expect(e.message).toMatch(/capability preemptiveTimeout is not available on this page/)
        expect(e.message).toMatch(/Cross-Origin-Embedder-Policy: require-corp/)
        // what the page can do passes
        yield* BrowserEngine.requireCapabilities(caps, { fuel: true, snapshots: true }, notIsolated)
        const made = yield* Effect.flip(BrowserEngine.make({ mode: "workers", environment: notIsolated }))
        expect(made.requirement).toBe('mode "workers"')
        expect(made.message).toMatch(/Cross-Origin-Opener-Policy/)
      })
  )

  it.effect('channel "shared" without Atomics.waitAsync is refused; the default falls back to postMessage', () =>
    Effect.gen(function* () {
      const noWaitAsync = { ...BrowserEngine.detect(), waitAsync: false }
      const e = yield* Effect.flip(BrowserEngine.make({ channel: "shared", environment: noWaitAsync }))
      expect(e.message).toMatch(/Atomics\.waitAsync/)
      const engine = yield* BrowserEngine.make({ environment: noWaitAsync })
      expect(engine.transport).toBe("message")
      yield* engine.shutdown
    })
  )
})

describe("BrowserEngine: timeouts and fuel", () => {
  it.live("a runaway call is reported as Timeout at its deadline; the page keeps running meanwhile", () =>
    withEngine({ workers: 1 }, (engine) =>
      Effect.gen(function* () {
        const looper = yield* spawn(engine, "looper", yield* Effect.promise(() => agentBytes("looper")))
        const { result, ticks, elapsed } = yield* ticksDuring(looper.invoke("spin", [], { timeoutMs: 300 }))
        expect(result._tag).toBe("Failure")
        if (result._tag === "Failure")
          expect(result.failure).toMatchObject({ _tag: "Timeout", function: "spin", timeoutMs: 300 })
        // not before its deadline; which deadline ended it is in the typed error above (timeoutMs: 300)
        expect(elapsed).toBeGreaterThanOrEqual(295)
        // a 10 ms interval kept firing during the 300 ms call
        expect(ticks).toBeGreaterThanOrEqual(15)
        // the agent is left terminated
        const after = yield* Effect.flip(looper.invoke("iterations", []))
        expect(after.message).toMatch(/instance terminated/)
      })
    )
  )

  it.live("the other agents of a timed-out worker come back on a fresh worker with their state", () =>
    withEngine({ workers: 1 }, (engine) =>
      Effect.gen(function* () {
        // exportState: the counter's internal count becomes an exported global, so its state is complete
        const rewritten = rewriteModule(yield* Effect.promise(() => agentBytes("counter")), { exportState: true })
        if (!rewritten.ok) return expect.unreachable("rewrite failed")
        const counter = yield* spawn(engine, "counter", rewritten.value.bytes)
        const looper = yield* spawn(engine, "looper", yield* Effect.promise(() => agentBytes("looper")))
        yield* counter.invoke("increment", [])
        yield* counter.invoke("increment", [])
        const timedOut = yield* Effect.flip(looper.invoke("spin", [], { timeoutMs: 100 }))
        expect(timedOut._tag).toBe("Timeout")
        // the counter continues where its last call left it, on a fresh worker
        expect((yield* counter.invoke("increment", [])).results).toEqual([3])
        expect(engine.stats().workers[0]!.replaced).toBe(1)
      })
    )
  )

  it.effect(
    "fuel stops a runaway call exactly (FuelExhausted) in a worker and in-page; bounded work reports what is left",
    () =>
      Effect.gen(function* () {
        const bytes = yield* Effect.promise(() => agentBytes("looper"))
        const metered = instrumentFuel(bytes)
        expect(metered.ok).toBe(true)
        if (!metered.ok) return
        for (const mode of ["workers", "inPage"] as const) {
          yield* withEngine({ mode, workers: 1 }, (engine) =>
            Effect.gen(function* () {
              const looper = yield* spawn(engine, `looper-${mode}`, metered.value)
              const e = yield* Effect.flip(looper.invoke("spin", [], { fuel: 50_000 }))
              expect(e).toMatchObject({ _tag: "FuelExhausted", function: "spin", fuel: 50_000 })
              const ok = yield* looper.invoke("spin_n", [10], { fuel: 1_000_000_000 })
              expect(ok.results).toEqual([10])
              expect(ok.fuelRemaining).toBeGreaterThan(0)
              expect(ok.fuelRemaining).toBeLessThan(1_000_000_000)
            })
          )
        }
      })
  )
})

describe("BrowserEngine: failures never escape", () => {
  it.effect("bytes that are not WebAssembly → CompileError", () =>
    withEngine({}, (engine) =>
      Effect.gen(function* () {
        const e = yield* Effect.flip(engine.compile(new Uint8Array([0, 97, 115, 109, 2, 0, 0, 0]), hash))
        expect(e._tag).toBe("CompileError")
      })
    )
  )

  it.effect(
    "a worker that dies: the call in flight fails with Trap (lost), the worker's other agents are recovered",
    () =>
      withEngine({ workers: 1 }, (engine) =>
        Effect.gen(function* () {
          const bytes = yield* Effect.promise(() => agentBytes("looper"))
          const a = yield* spawn(engine, "a", bytes)
          const b = yield* spawn(engine, "b", bytes)
          yield* a.invoke("spin_n", [7], {})
          yield* engine.crashWorker(b)
          // the worker was replaced; both agents live on the new one with their state (internal global kept? exported only)
          expect(engine.stats().workers[0]!.replaced).toBeGreaterThanOrEqual(1)
          const r = yield* a.invoke("spin_n", [3], {})
          expect(r.results).toEqual([3])
          const rb = yield* b.invoke("spin_n", [1], {})
          expect(rb.results).toEqual([1])
        })
      )
  )

  it.effect("a worker script that fails to load → InstantiationError (worker lost), not an unhandled rejection", () =>
    withEngine(
      {
        workers: 1,
        createWorker: () => new Worker("data:text/javascript,throw new Error('boom')", { type: "module" }) as never
      },
      (engine) =>
        Effect.gen(function* () {
          const bytes = yield* Effect.promise(() => agentBytes("counter"))
          const e = yield* Effect.flip(spawn(engine, "c", bytes))
          expect(e._tag).toBe("InstantiationError")
          expect(e.message).toMatch(/worker/)
        })
    )
  )

  it.effect("a non-shared memory import cannot cross to a worker → InstantiationError naming the import", () =>
    withEngine({}, (engine) =>
      Effect.gen(function* () {
        // (module (import "env" "mem" (memory 1)))
        const bytes = new Uint8Array([
          0, 97, 115, 109, 1, 0, 0, 0, 2, 12, 1, 3, 101, 110, 118, 3, 109, 101, 109, 2, 0, 1
        ])
        const e = yield* Effect.flip(
          spawn(engine, "m", bytes, { env: { mem: new WebAssembly.Memory({ initial: 1 }) } })
        )
        expect(e._tag).toBe("InstantiationError")
        expect(e.message).toMatch(/env\.mem: a non-shared WebAssembly\.Memory/)
        // a shared memory is fine
        const shared = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true })
        const bytesShared = new Uint8Array([
          0, 97, 115, 109, 1, 0, 0, 0, 2, 13, 1, 3, 101, 110, 118, 3, 109, 101, 109, 2, 3, 1, 1
        ])
        const ok = yield* spawn(engine, "s", bytesShared, { env: { mem: shared } })
        expect(yield* ok.memoryBytes).toBe(65_536)
      })
    )
  )

  it.effect("a host function that throws becomes a Trap of the calling export; the agent keeps working", () =>
    withEngine({}, (engine) =>
      Effect.gen(function* () {
        const logged: Array<number> = []
        let fail = true
        const env = {
          log: (x: number) => {
            if (fail) throw new Error("host says no")
            logged.push(x)
          },
          now: () => 1234.5
        }
        const agent = yield* spawn(engine, "h", yield* Effect.promise(() => agentBytes("host-caller")), { env })
        const e = yield* Effect.flip(agent.invoke("call_log", [5]))
        expect(e).toMatchObject({ _tag: "Trap", function: "call_log" })
        expect(e.message).toMatch(/host function threw: host says no/)
        fail = false
        expect((yield* agent.invoke("log_n", [3])).results).toEqual([3])
        expect(logged).toEqual([0, 1, 2])
        expect((yield* agent.invoke("call_now", [])).results).toEqual([1234.5])
      })
    )
  )
})

/** A call's outcome or error as plain data, for comparing two call paths. */
const settled = (outcome: InvokeOutcome | EngineInvokeError) =>
  outcome instanceof Error
    ? { error: { ...outcome, _tag: outcome._tag, message: outcome.message } }
    : { ok: { results: [...outcome.results], memoryBytes: outcome.memoryBytes, fuelRemaining: outcome.fuelRemaining } }

const viaRequest = (instance: WasmInstance, fn: string, args: ReadonlyArray<WasmValue>, fuel: number | undefined) =>
  Effect.map(Effect.result(instance.invoke(fn, args, fuel === undefined ? {} : { fuel })), (r) =>
    settled(r._tag === "Success" ? r.success : r.failure)
  )

const viaDirect = (instance: WasmInstance, fn: string, args: ReadonlyArray<WasmValue>, fuel: number | undefined) => {
  const slot = makeCallSlot()
  const failed = instance.prepareDirect!(fn)!(args, fuel, slot)
  return settled(
    failed ?? { results: callResults(slot.result), memoryBytes: slot.memoryBytes, fuelRemaining: slot.fuelRemaining }
  )
}

/** A WASI program: `say` writes "hi\n" to stdout, `exit` calls `proc_exit` with its argument. */
const WASI_PROGRAM = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hi\\n")
  (func (export "say") (result i32)
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 3))
    (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func (export "exit") (param i32) (call $proc_exit (local.get 0))))`

describe("BrowserEngine in-page: the synchronous call path", () => {
  it.effect(
    "prepareDirect and prepare give what invoke gives (real agents, fuel, host imports, traps, WASI through the shim)",
    () =>
      withEngine({ mode: "inPage" }, (engine) =>
        Effect.gen(function* () {
          const metered = instrumentFuel(yield* Effect.promise(() => agentBytes("looper")))
          if (!metered.ok) return expect.unreachable("fuel instrumentation failed")
          let fail = false
          const env = {
            log: (_: number) => {
              if (fail) throw new Error("host says no")
            },
            now: () => 1234.5
          }
          const cases: ReadonlyArray<{
            readonly bytes: Uint8Array
            readonly imports?: object
            readonly calls: ReadonlyArray<readonly [string, ReadonlyArray<WasmValue>, number?]>
          }> = [
            {
              bytes: yield* Effect.promise(() => agentBytes("counter")),
              calls: [
                ["increment", []],
                ["add", [41]],
                ["add_i64", [5n, 2n ** 40n]],
                ["get", []]
              ]
            },
            {
              bytes: yield* Effect.promise(() => agentBytes("trapper")),
              calls: [
                ["ok", []],
                ["divide", [1, 0]],
                ["crash", []],
                ["oob", []],
                ["recurse", [3]],
                ["recurse", [100_000_000]],
                ["ok", []]
              ]
            },
            {
              bytes: yield* Effect.promise(() => agentBytes("multi")),
              calls: [
                ["swap", [1, 2n]],
                ["divmod", [7, 2]]
              ]
            },
            {
              bytes: metered.value,
              calls: [
                ["spin", [], 50_000],
                ["spin_n", [10], 1_000_000_000],
                ["iterations", [], 1_000_000_000]
              ]
            },
            {
              bytes: yield* Effect.promise(() => agentBytes("host-caller")),
              imports: { env },
              calls: [
                ["call_log", [5]],
                ["call_now", []],
                ["log_n", [3]]
              ]
            },
            {
              bytes: yield* Effect.promise(() => wat(WASI_PROGRAM)),
              calls: [
                ["say", []],
                ["exit", [0]],
                ["say", []],
                ["exit", [3]]
              ]
            }
          ]
          let n = 0
          const errors: Array<string> = []
          for (const { bytes, imports = {}, calls } of cases) {
            n++
            const requested = yield* spawn(engine, `requested-${n}`, bytes, imports)
            const direct = yield* spawn(engine, `direct-${n}`, bytes, imports)
            const prepared = yield* spawn(engine, `prepared-${n}`, bytes, imports)
            expect(direct.prepareDirect).toBeDefined()
            for (const [fn, args, fuel] of calls) {
              for (const f of [false, true]) {
                fail = f
                const expected = yield* viaRequest(requested, fn, args, fuel)
                expect(viaDirect(direct, fn, args, fuel), `${fn}(${args.join(", ")})`).toEqual(expected)
                expect(settled(prepared.prepare!(fn)!(args, fuel)), `${fn}(${args.join(", ")})`).toEqual(expected)
                expect(yield* direct.memoryBytes).toBe(yield* requested.memoryBytes)
                if ("error" in expected) errors.push(`${fn}: ${expected.error._tag}`)
              }
            }
            // WASI output (the shim's stdout and exit code) reached each agent's handle alike
            expect(engine.output(`direct-${n}`)).toEqual(engine.output(`requested-${n}`))
            expect(engine.output(`prepared-${n}`)).toEqual(engine.output(`requested-${n}`))
            const state = yield* requested.snapshot
            expect(yield* direct.snapshot).toEqual(state)
          }
          // the failures the cases are there for happened (on both paths, compared above)
          expect([...new Set(errors)].sort()).toEqual(
            [
              "divide: Trap",
              "crash: Trap",
              "oob: Trap",
              "recurse: Trap",
              "spin: FuelExhausted",
              "call_log: Trap",
              "log_n: Trap",
              "exit: Trap"
            ].sort()
          )
          const wasi = engine.output("direct-6")
          expect(wasi?.stdout).toBe("hi\n".repeat(4))
          expect(wasi?.exitCode).toBe(3)
        })
      )
  )

  it.effect(
    "the runtime calls an idle in-page agent synchronously: Effect.runSync gets the result or the typed error",
    () =>
      Effect.gen(function* () {
        const bytes = yield* Effect.promise(() => agentBytes("counter"))
        const context = yield* Layer.build(
          AgentRuntimes.layerMemory().pipe(
            Layer.provide(Layer.merge(Layer.orDie(BrowserEngine.layerWith({ mode: "inPage" })), verifierLayer()))
          )
        )
        const runtime = Context.get(context, AgentRuntime)
        const id = agentId("sync")
        const moduleId = yield* runtime.loadModule(bytes, makeMetadata({ name: "counter", version: "1.0.0" }))
        yield* runtime.spawnAgent(id, moduleId, { memoryLimit: 16 * MiB })
        // the request path (before instances had synchronous callers) suspended on a promise: runSync failed
        expect(Effect.runSyncExit(runtime.invoke(id, "increment", []))).toMatchObject({ _tag: "Success", value: [1] })
        expect(Effect.runSyncExit(runtime.invoke(id, "add", [41]))).toMatchObject({ _tag: "Success", value: [42] })
        const failed = Effect.runSyncExit(Effect.flip(runtime.invoke(id, "add", [1n as unknown as number])))
        expect(failed).toMatchObject({ _tag: "Success", value: { _tag: "SignatureMismatch" } })
      }).pipe(Effect.scoped)
  )
})
