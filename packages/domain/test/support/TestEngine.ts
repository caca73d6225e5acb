/**
 * A scriptable `WasmEngine` for the domain's unit tests: modules are real
 * WebAssembly bytes (so `loadModule` reads real exports), but calls run
 * JavaScript behaviours registered per module, which can change the reported
 * memory, fail with typed errors, or advance the `TestClock` to simulate a
 * slow synchronous call. The conformance suite runs the real engines.
 */
import {
  type AgentConfigShape,
  AgentRuntime,
  AgentRuntimes,
  type EngineCapabilities,
  type EngineInvokeError,
  type EngineState,
  FunctionNotFound,
  InvalidSignature,
  makeMetadata,
  ModuleVerifier,
  type SettingsInput,
  Trap,
  WasmEngine,
  type WasmEngineShape,
  type WasmValue,
  moduleHash,
  type RuntimeEvent
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"

export interface CallContext {
  readonly agentId: string
  /** Per-instance scratch state. */
  readonly state: Record<string, number>
  /** Linear memory the instance reports, bytes. */
  memoryBytes: number
}

export type Behaviour = (
  ctx: CallContext,
  args: ReadonlyArray<WasmValue>
) => ReadonlyArray<WasmValue> | Effect.Effect<ReadonlyArray<WasmValue>, EngineInvokeError>

export interface TestEngine {
  readonly engine: WasmEngineShape
  /** Behaviours per module hash, function name. */
  readonly behaviours: Map<string, Record<string, Behaviour>>
  /** Calls seen, as `agentId.fn`. */
  readonly calls: Array<string>
  /** Largest number of concurrent calls seen per agent. */
  readonly maxConcurrency: Map<string, number>
  compiles: number
  /** Calls of `validate`. */
  validates: number
  /** Calls of the verifier (`runtimeLayer`'s, made by `testVerifierFor`). */
  verifies: number
  /** Key ids the verifier no longer trusts (`ModuleVerifier.trusts`; `verify` refuses them). */
  readonly revoked: Set<string>
}

export const capabilities: EngineCapabilities = {
  workers: false,
  preemptiveTimeout: false,
  fuel: false,
  wasi: false,
  sharedMemory: false,
  runtimeCompile: true,
  snapshots: true
}

export const makeTestEngine = (initialMemory = 65_536): TestEngine => {
  const behaviours = new Map<string, Record<string, Behaviour>>()
  const calls: Array<string> = []
  const maxConcurrency = new Map<string, number>()
  const t: TestEngine = {
    behaviours,
    calls,
    maxConcurrency,
    compiles: 0,
    validates: 0,
    verifies: 0,
    revoked: new Set(),
    engine: {
      platform: "Native",
      capabilities,
      validate: () =>
        Effect.sync(() => {
          t.validates++
        }),
      compile: (bytes, hash) =>
        Effect.sync(() => {
          t.compiles++
          return { hash, byteLength: bytes.byteLength, handle: hash }
        }).pipe(Effect.tap(() => Effect.yieldNow)),
      instantiate: (compiled, options) =>
        Effect.gen(function* () {
          yield* Effect.yieldNow
          const ctx: CallContext = { agentId: options.agentId, state: {}, memoryBytes: initialMemory }
          let running = 0
          let terminated = false
          const table = () => behaviours.get(compiled.hash) ?? {}
          return {
            invoke: (fn: string, args: ReadonlyArray<WasmValue>) =>
              Effect.gen(function* () {
                if (terminated) return yield* new Trap({ function: fn, reason: "instance terminated" })
                const b = table()[fn]
                calls.push(`${options.agentId}.${fn}`)
                running++
                maxConcurrency.set(options.agentId, Math.max(maxConcurrency.get(options.agentId) ?? 0, running))
                try {
                  if (b === undefined) {
                    if (fn.startsWith("_")) return { results: [], memoryBytes: ctx.memoryBytes }
                    return yield* new FunctionNotFound({ function: fn })
                  }
                  const r = b(ctx, args)
                  const results = Effect.isEffect(r) ? yield* r : r
                  return { results, memoryBytes: ctx.memoryBytes }
                } finally {
                  running--
                }
              }),
            memoryBytes: Effect.sync(() => ctx.memoryBytes),
            readMemory: (_offset: number, length: number) => Effect.succeed(new Uint8Array(length)),
            writeMemory: () => Effect.void,
            snapshot: Effect.sync(
              (): EngineState => ({ memoryBytes: ctx.memoryBytes, pages: [], globals: { ...ctx.state } })
            ),
            restore: (s: EngineState) =>
              Effect.sync(() => {
                ctx.memoryBytes = s.memoryBytes
                for (const [k, v] of Object.entries(s.globals)) ctx.state[k] = Number(v)
              }),
            terminate: Effect.sync(() => {
              terminated = true
            })
          }
        })
    }
  }
  return t
}

/**
 * A verifier that hashes with SHA-256 and refuses modules named "evil"; the
 * key id is `metadata.author` (default "test"), refused once in
 * `t.revoked`; calls are counted in `t.verifies`.
 */
export const testVerifierFor = (t?: Pick<TestEngine, "verifies" | "revoked">) =>
  Layer.succeed(ModuleVerifier, {
    verify: (bytes, metadata) =>
      Effect.suspend(() => {
        if (t !== undefined) t.verifies++
        const keyId = metadata.author ?? "test"
        if (metadata.name === "evil" || t?.revoked.has(keyId) === true) {
          return Effect.fail(new InvalidSignature({ module: metadata.name, reason: "untrusted key" }))
        }
        return Effect.succeed({ hash: moduleHash(createHash("sha256").update(bytes).digest("hex")), keyId })
      }),
    trusts: (keyId) => t?.revoked.has(keyId) !== true
  })

/** A verifier that hashes with SHA-256 and refuses modules named "evil". */
export const testVerifier = testVerifierFor()

/** WAT for a module exporting functions with the given signatures (bodies return zeros). */
export const watModule = (fns: Record<string, { params?: Array<string>; results?: Array<string> }>, extra = "") => {
  const body = Object.entries(fns)
    .map(([name, { params = [], results = [] }]) => {
      const p = params.length ? `(param ${params.join(" ")})` : ""
      const r = results.length ? `(result ${results.join(" ")})` : ""
      const zeros = results.map((t) => `(${t}.const 0)`).join(" ")
      return `(func (export "${name}") ${p} ${r} ${zeros})`
    })
    .join("\n")
  return `(module (memory (export "memory") 1) ${extra} ${body})`
}

export const MiB = 1024 * 1024

/** Builds a runtime layer on the test engine with in-memory ports. */
export const runtimeLayer = (t: TestEngine, settings: SettingsInput = {}) =>
  AgentRuntimes.layerMemory({ id: "rt-test", ...settings }).pipe(
    Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, t.engine), testVerifierFor(t)))
  )

/** Loads a module whose functions run `behaviours`. */
export const loadWith = (
  t: TestEngine,
  name: string,
  fns: Record<string, { params?: Array<string>; results?: Array<string> }>,
  behaviours: Record<string, Behaviour>
) =>
  Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const bytes = yield* Effect.promise(() => wat(watModule(fns, `(global (export "tag_${name}") i32 (i32.const 0))`)))
    const hash = createHash("sha256").update(bytes).digest("hex")
    t.behaviours.set(hash, behaviours)
    return yield* runtime.loadModule(bytes, makeMetadata({ name, version: "1.0.0" }))
  })

export const config = (memoryLimit = MiB, extra: Partial<AgentConfigShape> = {}): AgentConfigShape => ({
  memoryLimit,
  ...extra
})

/**
 * Runs `body` while collecting the runtime's published events (subscribed
 * before `body` starts); drains the subscription before returning.
 */
export const collecting = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const events: Array<RuntimeEvent> = []
      const stream = yield* runtime.events
      const fiber = yield* Effect.forkChild(Stream.runForEach(stream, (e) => Effect.sync(() => events.push(e))))
      const a = yield* body
      let stable = 0
      let seen = -1
      while (stable < 5) {
        yield* Effect.yieldNow
        if (events.length === seen) stable++
        else (seen = events.length), (stable = 0)
      }
      yield* Fiber.interrupt(fiber)
      return [a, events] as const
    })
  )
