/**
 * The worker engine in in-page mode (`transport: "inPage"`, what
 * engine-browser runs on a page that is not cross-origin isolated), in this
 * thread: its instances offer synchronous callers (`prepare`,
 * `prepareDirect`) straight onto the executor's live instance, and every
 * call through them has the same results, memory usage, fuel left, WASI
 * output and typed errors as the same call through `invoke` (the request
 * path) — on two instances of one module fed the same calls.
 */
import {
  agentId,
  callResults,
  type EngineInvokeError,
  type InvokeOutcome,
  makeCallSlot,
  moduleHash,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { OutputWire } from "../src/Protocol.js"
import * as WorkerEngine from "../src/WorkerEngine.js"
import type { WasiSession } from "../src/WorkerExecutor.js"
import type { WorkerHost } from "../src/WorkerHost.js"

const PAGE = 65_536

const MODULE = `(module
  (import "env" "log" (func $log (param i32)))
  (import "env" "ref" (func $ref (result externref)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 3)
  (global $n (export "n") (mut i32) (i32.const 0))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "swap") (param i32 i64) (result i64 i32) local.get 1 local.get 0)
  (func (export "nothing"))
  (func (export "bump") (result i32) (global.set $n (i32.add (global.get $n) (i32.const 1))) global.get $n)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func $rec (export "recurse") (param i32) (result i32) local.get 0 call $rec)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "log") (param i32) local.get 0 call $log)
  (func (export "ref") (result externref) call $ref)
  (func (export "id_ref") (param externref) (result externref) local.get 0)
  (func (export "exit") (param i32) local.get 0 call $exit)
  (func (export "write") (param i32) (result i32) local.get 0 i32.const 0 i32.const 0 i32.const 0 call $write)
  (func (export "spin") (loop $l br $l))
  (func (export "work") (param i32) (result i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_s (local.get $i) (local.get 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    local.get $i))`

/** Fuel for a call (the module is metered: a call without fuel runs on what the previous call left). */
const FUEL = 1_000_000_000

/** The calls both paths get, in order: [export, args, fuel]. */
const CALLS: ReadonlyArray<readonly [string, ReadonlyArray<WasmValue>, number | undefined]> = [
  ["add", [2, 3], FUEL],
  ["swap", [1, 9n], FUEL],
  ["nothing", [], FUEL],
  ["bump", [], FUEL],
  ["bump", [], FUEL],
  ["div", [1, 0], FUEL], // Trap: divide by zero
  ["recurse", [0], FUEL], // Trap: call stack exhausted
  ["grow", [1], FUEL], // 2 pages now
  ["grow", [5], FUEL], // past the maximum: -1
  ["store", [PAGE + 8, 42], FUEL],
  ["load", [PAGE + 8], FUEL],
  ["store", [3 * PAGE, 1], FUEL], // Trap: out of bounds
  ["log", [7], FUEL],
  ["log", [-1], FUEL], // the host function throws: Trap "host function threw"
  ["ref", [], FUEL], // an object result cannot cross: Trap
  ["id_ref", ["text" as unknown as WasmValue], FUEL], // a string argument cannot cross: Trap
  ["write", [65], FUEL], // WASI output
  ["exit", [0], FUEL], // proc_exit(0): a normal return
  ["exit", [3], FUEL], // proc_exit(3): Trap
  ["spin", [], 1_000], // FuelExhausted
  ["work", [10], 1_000_000], // fuel left
  ["work", [10], undefined], // no fuel given: runs on what the previous call left
  ["bump", [], FUEL]
]

class WasiExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`)
  }
}

/** A WASI of two functions: `fd_write` records its first argument as a byte of stdout, `proc_exit` throws `WasiExit`. */
const fakeWasi = (): WasiSession => {
  let stdout: Array<number> = []
  let exitCode: number | null = null
  return {
    imports: {
      fd_write: (fd: number) => {
        stdout.push(fd)
        return 0
      },
      proc_exit: (code: number) => {
        throw new WasiExit(code)
      }
    },
    bind: () => undefined,
    exited: (code) => {
      exitCode = code
    },
    drain: () => {
      if (stdout.length === 0 && exitCode === null) return null
      const out: OutputWire = [new Uint8Array(stdout), new Uint8Array(0), exitCode]
      stdout = []
      exitCode = null
      return out
    }
  }
}

/** A host whose workers are never started (in-page mode has none). */
const noWorkers: WorkerHost = {
  start: () => {
    throw new Error("in-page mode starts no worker")
  },
  syncReceive: false,
  now: () => performance.now(),
  setTimer: (ms, f) => {
    const t = setTimeout(f, ms)
    return () => clearTimeout(t)
  }
}

/** An in-page worker engine; `outputs` collects what each agent's WASI wrote (by agent id). */
const inPageEngine = () => {
  const outputs = new Map<string, Array<OutputWire>>()
  const engine = WorkerEngine.make<string>({
    platform: "Browser",
    capabilities: {
      workers: false,
      preemptiveTimeout: false,
      fuel: true,
      wasi: true,
      sharedMemory: false,
      runtimeCompile: true,
      snapshots: true
    },
    name: "the test engine",
    host: noWorkers,
    transport: "inPage",
    inPage: {
      createWasi: fakeWasi,
      exitCode: (e) => (e instanceof WasiExit ? e.code : undefined),
      notAModule: "not a module"
    },
    wasi: {
      open: (id) => ({
        spec: id,
        handle: {
          onOutput: (output) => {
            const list = outputs.get(id) ?? []
            list.push(output)
            outputs.set(id, list)
          },
          release: () => undefined
        }
      })
    }
  })
  return { engine, outputs }
}

const hostImports = () => ({
  env: {
    log: (x: number) => {
      if (x < 0) throw new Error("negative")
    },
    ref: () => ({ an: "object" })
  }
})

/** A call's outcome or error as plain data, for comparing the two paths. */
const settled = (outcome: InvokeOutcome | EngineInvokeError) =>
  outcome instanceof Error
    ? { error: { ...outcome, _tag: outcome._tag, message: outcome.message } }
    : { ok: { results: [...outcome.results], memoryBytes: outcome.memoryBytes, fuelRemaining: outcome.fuelRemaining } }

const setup = Effect.gen(function* () {
  const bytes = yield* Effect.promise(() => wat(MODULE))
  const rewritten = rewriteModule(bytes, { fuel: true })
  if (!rewritten.ok) throw rewritten.error
  const { engine, outputs } = inPageEngine()
  const compiled = yield* engine.compile(rewritten.value.bytes, moduleHash("0".repeat(64)))
  const spawn = (name: string) =>
    engine.instantiate(compiled, { agentId: agentId(name), memoryLimit: 4 * PAGE, imports: hostImports() })
  return { engine, outputs, spawn }
})

const viaRequest = (instance: WasmInstance, fn: string, args: ReadonlyArray<WasmValue>, fuel: number | undefined) =>
  Effect.map(Effect.result(instance.invoke(fn, args, fuel === undefined ? {} : { fuel })), (r) =>
    settled(r._tag === "Success" ? r.success : r.failure)
  )

const viaDirect = (instance: WasmInstance, fn: string, args: ReadonlyArray<WasmValue>, fuel: number | undefined) => {
  const direct = instance.prepareDirect!(fn)!
  const slot = makeCallSlot()
  const failed = direct(args, fuel, slot)
  if (failed !== undefined) return settled(failed)
  return settled({
    results: callResults(slot.result),
    memoryBytes: slot.memoryBytes,
    fuelRemaining: slot.fuelRemaining
  })
}

describe("WorkerEngine in-page: synchronous callers", () => {
  it.effect("in-page instances offer prepare and prepareDirect; undefined for an export that is not a function", () =>
    Effect.gen(function* () {
      const { engine, spawn } = yield* setup
      const a = yield* spawn("a")
      expect(typeof a.prepare).toBe("function")
      expect(typeof a.prepareDirect).toBe("function")
      expect(a.prepareDirect!("memory")).toBeUndefined()
      expect(a.prepare!("nope")).toBeUndefined()
      expect(a.prefetch).toBeUndefined() // no worker to wake in-page
      yield* engine.shutdown
    })
  )

  it.effect("prepareDirect and prepare give what invoke gives: results, memory, fuel, WASI output, typed errors", () =>
    Effect.gen(function* () {
      const { engine, outputs, spawn } = yield* setup
      const requested = yield* spawn("requested")
      const direct = yield* spawn("direct")
      const prepared = yield* spawn("prepared")
      const seen: Array<string> = []
      for (const [fn, args, fuel] of CALLS) {
        const expected = yield* viaRequest(requested, fn, args, fuel)
        expect(viaDirect(direct, fn, args, fuel), `${fn}(${args.join(", ")})`).toEqual(expected)
        expect(settled(prepared.prepare!(fn)!(args, fuel)), `${fn}(${args.join(", ")})`).toEqual(expected)
        // the instance's memory usage after the call (`memoryBytes`), on success and failure alike
        const bytes = yield* requested.memoryBytes
        expect(yield* direct.memoryBytes).toBe(bytes)
        expect(yield* prepared.memoryBytes).toBe(bytes)
        seen.push("error" in expected ? String(expected.error._tag) : "ok")
      }
      // the cases are what they say (not all successes)
      expect(seen).toEqual([
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        "Trap",
        "Trap",
        "ok",
        "ok",
        "ok",
        "ok",
        "Trap",
        "ok",
        "Trap",
        "Trap",
        "Trap",
        "ok",
        "ok",
        "Trap",
        "FuelExhausted",
        "ok",
        "ok",
        "ok"
      ])
      // WASI: each agent's handle got the same output (bytes written, exit codes)
      expect(outputs.get("requested")).toBeDefined()
      expect(outputs.get("direct")).toEqual(outputs.get("requested"))
      expect(outputs.get("prepared")).toEqual(outputs.get("requested"))
      // the state the calls left is the same (read through the request path: snapshot)
      const state = yield* requested.snapshot
      expect(state.globals).toEqual({ n: 3 })
      expect(yield* direct.snapshot).toEqual(state)
      expect(yield* prepared.snapshot).toEqual(state)
      yield* engine.shutdown
    })
  )

  it.effect("direct calls and requests share one instance: restore, writeMemory, then direct calls see them", () =>
    Effect.gen(function* () {
      const { engine, spawn } = yield* setup
      const a = yield* spawn("a")
      const bump = (args: ReadonlyArray<WasmValue>) => a.prepare!("bump")!(args, FUEL)
      const load = (args: ReadonlyArray<WasmValue>) => a.prepare!("load")!(args, FUEL)
      expect(bump([])).toMatchObject({ results: [1] })
      const saved = yield* a.snapshot
      expect(bump([])).toMatchObject({ results: [2] })
      yield* a.writeMemory(16, new Uint8Array([7, 0, 0, 0]))
      expect(load([16])).toMatchObject({ results: [7] })
      yield* a.restore(saved)
      expect(bump([])).toMatchObject({ results: [2] })
      expect(load([16])).toMatchObject({ results: [0] })
      expect((yield* a.invoke("bump", [], { fuel: FUEL })).results).toEqual([3])
      yield* engine.shutdown
    })
  )

  it.effect('after terminate both paths fail with the same Trap "instance terminated (…)"', () =>
    Effect.gen(function* () {
      const { engine, spawn } = yield* setup
      const a = yield* spawn("a")
      const add = a.prepareDirect!("add")!
      yield* a.terminate
      const requested = yield* Effect.flip(a.invoke("add", [1, 2]))
      const failed = add([1, 2], undefined, makeCallSlot())
      expect(requested).toMatchObject({ _tag: "Trap", function: "add" })
      expect(requested.message).toMatch(/instance terminated \(terminated by the host\)/)
      expect(failed).toEqual(requested)
      // a caller made after terminate fails the same way
      expect(a.prepare!("add")?.([1, 2]) ?? "none").toEqual(requested)
      yield* engine.shutdown
    })
  )

  it.effect("a failed direct call leaves the caller's slot as it was", () =>
    Effect.gen(function* () {
      const { engine, spawn } = yield* setup
      const a = yield* spawn("a")
      const slot = makeCallSlot()
      expect(a.prepareDirect!("add")!([2, 3], FUEL, slot)).toBeUndefined()
      expect(slot).toMatchObject({ result: 5, memoryBytes: PAGE })
      expect(slot.fuelRemaining).toBeLessThan(FUEL)
      const before = { ...slot }
      expect(a.prepareDirect!("ref")!([], FUEL, slot)).toMatchObject({ _tag: "Trap" })
      expect(a.prepareDirect!("div")!([1, 0], FUEL, slot)).toMatchObject({ _tag: "Trap" })
      expect(a.prepareDirect!("spin")!([], 100, slot)).toMatchObject({ _tag: "FuelExhausted", fuel: 100 })
      expect(slot).toEqual(before)
      yield* engine.shutdown
    })
  )
})
