/**
 * Suite 3, invoke: `add(i32, i32)` (the signed `no-memory` agent), a no-op,
 * an i64 function (the signed `counter` agent's `add_i64`) and a call that
 * passes 4 KiB through linear memory (`writeMemory` + call), each through
 * the Effect API (`runtime.invoke` in a loop inside one `Effect.gen`, many
 * calls per sample), through the Promise facade (`createRuntime`), and the
 * baseline: the direct export call on a raw instance of the same bytes.
 * And the prepared call handle (`runtime.prepare(agentId, fn).call`): the
 * export resolved and checked once, then a synchronous call per use. Every
 * call row without a payload (direct, fuel-rewritten direct, prepared) is
 * timed by a loop of its own (`Measure.ownLoop`), so each call site sees
 * one callee, as a caller holding one handle sees it.
 *
 * @since 0.1.0
 */
import { readAgent } from "@agent-runtime/agents"
import {
  agentId,
  type AgentRuntimeShape,
  makeMetadata,
  type PromiseRuntime,
  type WasmValue
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { makePromiseRuntime, makeRuntime, MiB } from "./BenchRuntime.js"
import { consume, measure, ownLoop, type Row, type RunOptions, type SuiteResult, size, timeSync } from "./Measure.js"
import * as WasmBinary from "@agent-runtime/wasm-binary"
import { assemble, callsWat, computeWat } from "./Modules.js"

const SUITE = "invoke"

interface Case {
  readonly label: string
  readonly module: () => Promise<{ name: string; bytes: Uint8Array }>
  readonly fn: string
  readonly args: ReadonlyArray<WasmValue>
  /** Bytes written to linear memory at offset 0 before each call (the 4 KiB case). */
  readonly payload?: Uint8Array
}

const payload = new Uint8Array(4096).map((_, i) => (i * 31) & 0xff)

const cases: ReadonlyArray<Case> = [
  { label: "no-op", module: async () => ({ name: "calls", bytes: await assemble(callsWat(1)) }), fn: "noop", args: [] },
  {
    label: "add(i32,i32)",
    module: async () => ({ name: "no-memory", bytes: readAgent("no-memory") }),
    fn: "add",
    args: [20, 22]
  },
  {
    label: "add_i64(i64,i64)",
    module: async () => ({ name: "counter", bytes: readAgent("counter") }),
    fn: "add_i64",
    args: [1n << 40n, 2n]
  },
  {
    label: "4 KiB via memory",
    module: async () => ({ name: "calls", bytes: await assemble(callsWat(1)) }),
    fn: "last_byte",
    args: [0, 4096],
    payload
  }
]

export const invokeSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const notes: Array<string> = []
  const rawBatch = size(options, 100_000, 10_000)
  const effectBatch = size(options, 10_000, 2_000)
  const promiseBatch = size(options, 1_000, 200)
  const bench = await makeRuntime()
  const facade: PromiseRuntime = await makePromiseRuntime()
  const { runtime, run } = bench
  try {
    for (const c of cases) {
      const { name, bytes } = await c.module()
      const instance = new WebAssembly.Instance(await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>), {})
      const f = instance.exports[c.fn] as (...a: ReadonlyArray<WasmValue>) => unknown
      const memory = instance.exports.memory as WebAssembly.Memory | undefined
      const raw = `direct export call: ${c.label}`
      const p = c.payload
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: raw,
            batch: rawBatch,
            // a loop of its own (monomorphic), as every call row without a payload
            run:
              p === undefined || memory === undefined
                ? ownLoop(raw, f, c.args)
                : (batch) =>
                    timeSync(batch, () => {
                      new Uint8Array(memory.buffer).set(p, 0)
                      consume(f(...c.args))
                    })
          },
          options
        )
      )
      const id = agentId(`invoke-${c.fn}`)
      const metadata = makeMetadata({ name, version: "1.0.0" })
      const moduleId = await run(runtime.loadModule(bytes, metadata))
      await run(runtime.spawnAgent(id, moduleId, { memoryLimit: MiB }))
      const once = (rt: AgentRuntimeShape) =>
        p === undefined
          ? rt.invoke(id, c.fn, c.args)
          : Effect.andThen(rt.writeMemory(id, 0, p), rt.invoke(id, c.fn, c.args))
      const check = await run(once(runtime))
      if (check.length > 0) consume(check)
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: `Effect runtime.invoke: ${c.label}`,
            baseline: raw,
            batch: effectBatch,
            ...(p === undefined
              ? { target: { text: "≤ 0.5 µs median", met: (_r: number, median: number) => median <= 0.0005 } }
              : {}),
            run: async (batch) => {
              const start = performance.now()
              await run(
                Effect.gen(function* () {
                  for (let i = 0; i < batch; i++) consume(yield* once(runtime))
                })
              )
              return performance.now() - start
            }
          },
          options
        )
      )
      if (p === undefined) {
        const handle = await run(runtime.prepare(id, c.fn))
        const call = handle.call
        if (call === undefined) notes.push(`prepared call handle: ${c.label}: no synchronous path on this engine`)
        else {
          const preparedRow = `prepared call handle: ${c.label}`
          rows.push(
            await measure(
              {
                suite: SUITE,
                name: preparedRow,
                baseline: raw,
                batch: rawBatch,
                target: { text: "≤ 3× direct call", met: (ratio: number) => ratio <= 3 },
                note: "each handle and each direct baseline timed by a loop of its own (Measure.ownLoop: monomorphic call sites)",
                run: ownLoop(preparedRow, call, c.args)
              },
              options
            )
          )
          // the agent runs the fuel-rewritten export (limits.defaultFuel): the same rewrite called directly,
          // the counter set before each call as the engine does, is the floor of a metered call
          const fueled = await fuelRewrittenExport(bytes, c.fn)
          if (fueled !== undefined) {
            const rawFuel = `direct export call, fuel-rewritten (counter set per call): ${c.label}`
            rows.push(
              await measure(
                {
                  suite: SUITE,
                  name: rawFuel,
                  baseline: raw,
                  batch: rawBatch,
                  run: ownLoop(rawFuel, fueled.f, c.args, { global: fueled.fuel, value: DEFAULT_FUEL })
                },
                options
              )
            )
            const againstFuel = `prepared call handle vs fuel-rewritten direct: ${c.label}`
            rows.push(
              await measure(
                {
                  suite: SUITE,
                  name: againstFuel,
                  baseline: rawFuel,
                  batch: rawBatch,
                  target: { text: "≤ 3× direct call", met: (ratio: number) => ratio <= 3 },
                  note: "both timed by loops of their own (Measure.ownLoop: monomorphic call sites)",
                  run: ownLoop(againstFuel, call, c.args)
                },
                options
              )
            )
          }
        }
      }
      const moduleIdP = await facade.loadModule(bytes, metadata)
      await facade.spawnAgent(id, moduleIdP, { memoryLimit: MiB })
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: `Promise facade invoke: ${c.label}`,
            baseline: raw,
            batch: promiseBatch,
            run: async (batch) => {
              const start = performance.now()
              for (let i = 0; i < batch; i++) {
                if (p !== undefined) await facade.writeMemory(id, 0, p)
                consume(await facade.invoke(id, c.fn, c.args))
              }
              return performance.now() - start
            }
          },
          options
        )
      )
    }
    notes.push(...(await fuelRows(options, bench, rows)))
  } finally {
    await facade.dispose()
    await bench.dispose()
  }
  return { suite: SUITE, rows, notes }
}

/** The fuel units a call gets in the runtime's default (`limits.defaultFuel`, read from the settings' defaults). */
const DEFAULT_FUEL = 1_000_000_000n

/** `fn` of `bytes` rewritten for fuel as the runtime rewrites an agent's module (`rewriteModule`, deferred start), and its counter. */
const fuelRewrittenExport = async (
  bytes: Uint8Array,
  fn: string
): Promise<{ f: (...a: ReadonlyArray<WasmValue>) => unknown; fuel: WebAssembly.Global } | undefined> => {
  const r = WasmBinary.rewriteModule(bytes, { fuel: { initialFuel: DEFAULT_FUEL, deferStart: true } })
  if (!r.ok) return undefined
  // a module that defines no globals imports its counter (wasm-binary `fuelImports`); an unused import is ignored
  const counter = new WebAssembly.Global({ value: "i64", mutable: true }, DEFAULT_FUEL)
  const instance = new WebAssembly.Instance(
    await WebAssembly.compile(r.value.bytes as Uint8Array<ArrayBuffer>),
    WasmBinary.fuelImports(counter)
  )
  const start = instance.exports[WasmBinary.START_EXPORT]
  if (typeof start === "function") (start as () => void)()
  const fuel = instance.exports[WasmBinary.FUEL_EXPORT]
  return fuel instanceof WebAssembly.Global
    ? { f: instance.exports[fn] as (...a: ReadonlyArray<WasmValue>) => unknown, fuel }
    : undefined
}

type InstrumentFuel = (
  bytes: Uint8Array,
  options?: { initialFuel?: bigint }
) => { ok: boolean; value?: Uint8Array; error?: unknown }

/** Iterations of the compute loop per call. */
const COMPUTE_N = 10_000

/**
 * Fuel-metered compute against unmetered, when `instrumentFuel` exists:
 * `sum(10 000)` raw (baseline), the instrumented module called directly
 * with the fuel global set before each call, and through `runtime.invoke`
 * of an agent spawned with `AgentConfig.fuel` (the runtime compiles a
 * fuel-instrumented variant; the native engine sets the counter per call).
 */
const fuelRows = async (
  options: RunOptions,
  bench: { runtime: AgentRuntimeShape; run: <A, E>(e: Effect.Effect<A, E, never>) => Promise<A> },
  rows: Array<Row>
): Promise<Array<string>> => {
  const instrument = (WasmBinary as Record<string, unknown>)["instrumentFuel"]
  if (typeof instrument !== "function")
    return ["instrumentFuel not in @agent-runtime/wasm-binary yet: fuel-metered compute not measurable"]
  const bytes = await assemble(computeWat)
  const r = (instrument as InstrumentFuel)(bytes)
  if (!r.ok || r.value === undefined) throw new Error(`instrumentFuel refused the compute module: ${String(r.error)}`)
  const metered = r.value
  const plain = new WebAssembly.Instance(await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>), {})
  const fueled = new WebAssembly.Instance(
    await WebAssembly.compile(metered as Uint8Array<ArrayBuffer>),
    WasmBinary.fuelImports(new WebAssembly.Global({ value: "i64", mutable: true }, 0n)) // a module without globals imports its counter
  )
  const sumPlain = plain.exports.sum as (n: number) => number
  const sumFueled = fueled.exports.sum as (n: number) => number
  const fuel = fueled.exports[WasmBinary.FUEL_EXPORT] as WebAssembly.Global
  const batch = size(options, 100, 20)
  const raw = `direct call, unmetered: sum(${COMPUTE_N})`
  rows.push(
    await measure(
      { suite: SUITE, name: raw, batch, run: (b) => timeSync(b, () => consume(sumPlain(COMPUTE_N))) },
      options
    )
  )
  rows.push(
    await measure(
      {
        suite: SUITE,
        name: `direct call, fuel-metered: sum(${COMPUTE_N})`,
        baseline: raw,
        batch,
        target: { text: "≤ 1.5× unmetered", met: (x) => x <= 1.5 },
        run: (b) =>
          timeSync(b, () => {
            fuel.value = 1_000_000_000n
            consume(sumFueled(COMPUTE_N))
          })
      },
      options
    )
  )
  const { runtime, run } = bench
  const id = agentId("invoke-fuel")
  // the runtime instruments the module itself for an agent spawned with `fuel` (a rewritten variant)
  const moduleId = await run(runtime.loadModule(bytes, makeMetadata({ name: "compute-fuel", version: "1.0.0" })))
  await run(runtime.spawnAgent(id, moduleId, { memoryLimit: MiB, fuel: 1_000_000_000 }))
  rows.push(
    await measure(
      {
        suite: SUITE,
        name: `Effect runtime.invoke, fuel-metered: sum(${COMPUTE_N})`,
        baseline: raw,
        batch,
        target: { text: "≤ 1.5× unmetered", met: (x) => x <= 1.5 },
        run: async (b) => {
          const start = performance.now()
          await run(
            Effect.gen(function* () {
              for (let i = 0; i < b; i++) consume(yield* runtime.invoke(id, "sum", [COMPUTE_N]))
            })
          )
          return performance.now() - start
        }
      },
      options
    )
  )
  return []
}
