/**
 * Spawn-level differential fuzzing (issue 12) on the native engine:
 * structure-aware mutants of the (unsigned) fixture agents are loaded,
 * spawned with a fuel budget and a small memory limit, and every export is
 * called with zero arguments of its types. Every step must end in a value or
 * a typed error (never a defect), and after each mutant is evicted the pool
 * is back to zero (no agent, nothing reserved or used).
 *
 * Time-bounded (25 s), up to 1 000 mutants; the seed and counts are printed
 * (`FUZZ_SEED=<seed>` reproduces a run). A mutant that breaks an invariant
 * is written to `test/regressions/`, and every file there is replayed first.
 */
import { verifierLayer } from "@agent-runtime/conformance"
import { readUnsignedAgent } from "@agent-runtime/agents"
import {
  agentId,
  AgentRuntime,
  AgentRuntimes,
  makeMetadata,
  type AgentRuntimeShape,
  type WasmValue
} from "@agent-runtime/domain"
import { mutateStructured, prng } from "@agent-runtime/test-support/mutate"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Scope } from "effect"
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { NativeEngine } from "../src/index.js"

const MAX_MUTANTS = 1_000
const BUDGET_MS = 25_000
const SEED =
  process.env["FUZZ_SEED"] === undefined || process.env["FUZZ_SEED"] === ""
    ? (Date.now() ^ 0x5a4e) >>> 0
    : Number(process.env["FUZZ_SEED"])
const MiB = 1_048_576
const regressionsDir = fileURLToPath(new URL("./regressions/", import.meta.url))
const AGENTS = [
  "counter",
  "text",
  "leaky",
  "flaky",
  "trapper",
  "lifecycle",
  "looper",
  "multi",
  "no-memory",
  "grower",
  "start-trap"
] as const

const zero = (t: string): WasmValue | undefined =>
  t === "i32" || t === "f32" || t === "f64" ? 0 : t === "i64" ? 0n : undefined

interface Tally {
  mutants: number
  loaded: number
  spawned: number
  calls: number
  values: number
  typedErrors: Map<string, number>
}

/** Runs one mutant through load → spawn → calls → evict; returns the problem, if any. */
const runMutant = async (
  rt: AgentRuntimeShape,
  bytes: Uint8Array,
  n: number,
  tally: Tally
): Promise<string | undefined> => {
  const count = (tag: string) => tally.typedErrors.set(tag, (tally.typedErrors.get(tag) ?? 0) + 1)
  const id = agentId(`m${n}`)
  const exit = await Effect.runPromiseExit(
    Effect.gen(function* () {
      const loaded = yield* Effect.result(rt.loadModule(bytes, makeMetadata({ name: `mutant-${n}`, version: "1.0.0" })))
      if (loaded._tag === "Failure") return count(loaded.failure._tag)
      tally.loaded++
      const spawned = yield* Effect.result(rt.spawnAgent(id, loaded.success, { memoryLimit: 4 * MiB, fuel: 1_000_000 }))
      if (spawned._tag === "Failure") return count(spawned.failure._tag)
      tally.spawned++
      const module = yield* rt.getModule(loaded.success)
      for (const [fn, type] of module.functions) {
        const args = type.params.map(zero)
        if (args.some((a) => a === undefined)) continue
        tally.calls++
        const r = yield* Effect.result(rt.invoke(id, fn, args as Array<WasmValue>))
        if (r._tag === "Success") tally.values++
        else count(r.failure._tag)
      }
      yield* Effect.ignore(rt.evictAgent(id, "Manual"))
    })
  )
  if (Exit.isFailure(exit)) {
    return Cause.hasDies(exit.cause)
      ? `defect: ${Cause.pretty(exit.cause)}`
      : `untyped failure: ${Cause.pretty(exit.cause)}`
  }
  const stats = await Effect.runPromise(rt.stats)
  if (stats.agents !== 0 || stats.memory.reserved !== 0 || stats.memory.used !== 0) {
    return `pool not back to zero: ${stats.agents} agents, ${stats.memory.reserved} bytes reserved, ${stats.memory.used} used`
  }
  return undefined
}

const keep = (bytes: Uint8Array, problem: string): string => {
  mkdirSync(regressionsDir, { recursive: true })
  const path = `${regressionsDir}spawn-${SEED}-${bytes.length}.wasm`
  writeFileSync(path, bytes)
  writeFileSync(`${path}.txt`, problem)
  return path
}

describe("mutant spawn fuzzing (native engine)", () => {
  it(
    `up to ${MAX_MUTANTS} mutants in ${BUDGET_MS / 1000} s: every call ends in a value or a typed error, the pool returns to zero`,
    async () => {
      const scope = Scope.makeUnsafe()
      const layer = AgentRuntimes.layerMemory({ pool: { totalMemory: 64 * MiB }, autoPressure: false }).pipe(
        Layer.provide(Layer.mergeAll(NativeEngine.layer, verifierLayer({ allowUnsigned: true })))
      )
      const rt = Context.get(await Effect.runPromise(Layer.buildWithScope(layer, scope)), AgentRuntime)
      const tally: Tally = { mutants: 0, loaded: 0, spawned: 0, calls: 0, values: 0, typedErrors: new Map() }
      const problems: Array<string> = []
      try {
        let replay: Array<string> = []
        try {
          replay = readdirSync(regressionsDir).filter((f) => f.endsWith(".wasm"))
        } catch {
          replay = []
        }
        for (const f of replay) {
          const p = await runMutant(rt, new Uint8Array(readFileSync(`${regressionsDir}${f}`)), tally.mutants++, tally)
          if (p !== undefined) problems.push(`regression ${f}: ${p}`)
        }
        const corpus = AGENTS.map((name) => readUnsignedAgent(name))
        const rng = prng(SEED)
        const deadline = Date.now() + BUDGET_MS
        while (tally.mutants < MAX_MUTANTS && Date.now() < deadline && problems.length < 5) {
          let m = mutateStructured(rng.pick(corpus), rng, corpus)
          if (rng.int(2) === 0) m = mutateStructured(m.bytes, rng, corpus)
          const p = await runMutant(rt, m.bytes, tally.mutants++, tally)
          if (p !== undefined) problems.push(`${m.what}: ${p} → ${keep(m.bytes, p)}`)
        }
      } finally {
        await Effect.runPromise(rt.shutdown)
        await Effect.runPromise(Scope.close(scope, Exit.void))
        const errors = [...tally.typedErrors]
          .sort(([, a], [, b]) => b - a)
          .map(([t, n]) => `${t} ${n}`)
          .join(", ")
        console.log(
          `mutant spawn: seed ${SEED}, ${tally.mutants} mutants, ${tally.loaded} loaded, ${tally.spawned} spawned, ` +
            `${tally.calls} calls (${tally.values} values); typed errors: ${errors}`
        )
      }
      expect(problems).toEqual([])
      expect(tally.mutants).toBeGreaterThanOrEqual(200)
      expect(tally.spawned).toBeGreaterThan(20)
    },
    BUDGET_MS + 60_000
  )
})
