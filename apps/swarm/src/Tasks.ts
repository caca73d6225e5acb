/**
 * One round's work for one agent, per fixture type (packages/agents/README.md):
 * counters count (plus an i64 add), text agents process sentences through
 * linear memory (word count, distinct words, top word, CRC-32 — all checked
 * against `Corpus.facts`), lifecycle agents bump their state (and some break
 * their health in `BREAK_ROUND`), leaky agents leak, flaky agents work until
 * their health check fails, trappers compute and trap once per task.
 *
 * A task's random choices are drawn from the run's PRNG when the task is
 * built (`task`), not when it runs, so concurrent tasks keep a seeded run
 * deterministic. Every state-changing call that succeeds is acknowledged
 * (`RunSettings.ack`) after the runtime returned — with persistence, after
 * its state was saved.
 *
 * @since 0.1.0
 */
import type { WasmValue } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { facts, sentences } from "./Corpus.js"
import { attempt, call, follow, i32, type Run } from "./Ledger.js"
import { BREAK_ROUND, type SwarmAgent } from "./Plan.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The task of `agent` in `round`; a leaky agent leaks `leakKiB` KiB. */
export const task = (run: Run, agent: SwarmAgent, round: number, leakKiB: number): Effect.Effect<void> => {
  const { prng } = run.settings
  switch (agent.type) {
    case "counter":
      return counterTask(
        run,
        agent,
        prng.int(0, 3),
        prng.int(1, 100),
        BigInt(prng.int(-1_000_000, 1_000_000)) * 1_000_003n
      )
    case "text": {
      const parts = prng.int(1, 3)
      const text = Array.from({ length: parts }, () => prng.pick(sentences)).join(" ")
      return textTask(run, agent, text)
    }
    case "lifecycle":
      return lifecycleTask(run, agent, round === BREAK_ROUND && agent.breaksHealth)
    case "leaky":
      return leakyTask(run, agent, leakKiB)
    case "flaky":
      return flakyTask(run, agent)
    case "trapper":
      return trapperTask(run, agent, prng.int(1, 100_000), prng.int(1, 97), prng.int(0, 3))
  }
}

/** Calls a state-changing export; a result is acknowledged, then checked against `next(expected)`. */
const changeState = (
  run: Run,
  agent: SwarmAgent,
  fn: string,
  args: ReadonlyArray<WasmValue>,
  next: (expected: number) => number,
  what: string
) =>
  Effect.map(call(run, agent, fn, args), (called) => {
    const n = i32(called)
    if (n === undefined) return
    run.settings.ack(agent.id, n)
    follow(run, agent, n, next, what)
  })

/** op 0: increment; 1: increment and add(k); 2: add(k); 3: add_i64(big, 3·big) then get. */
export const counterTask = (run: Run, agent: SwarmAgent, op: number, k: number, big: bigint): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (op === 0 || op === 1) yield* changeState(run, agent, "increment", [], (e) => e + 1, "increment()")
    if (op === 1 || op === 2) yield* changeState(run, agent, "add", [k], (e) => e + k, `add(${k})`)
    if (op === 3) {
      const r = yield* call(run, agent, "add_i64", [big, big * 3n])
      if (r.ok)
        run.ledger.check(
          r.results[0] === BigInt.asIntN(64, big * 4n),
          () => `${agent.id}.add_i64 → ${String(r.results[0])}`
        )
      const n = i32(yield* call(run, agent, "get"))
      if (n !== undefined) follow(run, agent, n, (e) => e, "get()")
    }
  })

/** bump, then `initialized()` must be 1; `breakHealth`: `break_health` (the health checker then recovers it). */
export const lifecycleTask = (run: Run, agent: SwarmAgent, breakHealth: boolean): Effect.Effect<void> =>
  Effect.gen(function* () {
    yield* changeState(run, agent, "bump", [], (e) => e + 1, "bump()")
    const initialized = i32(yield* call(run, agent, "initialized"))
    if (initialized !== undefined)
      run.ledger.check(initialized === 1, () => `${agent.id}.initialized() → ${initialized}`)
    if (breakHealth) yield* call(run, agent, "break_health")
  })

/**
 * leak(`leakKiB`). What it leaked so far is tracked here (a restored agent
 * not read at take-over is asked once): with `--db` every call saves the
 * agent's whole memory, tens of MiB for a leaky agent late in the run.
 */
export const leakyTask = (run: Run, agent: SwarmAgent, leakKiB: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (!agent.known) {
      const leaked = i32(yield* call(run, agent, "leaked"))
      if (leaked !== undefined) follow(run, agent, leaked, (e) => e, "leaked()")
    }
    yield* changeState(run, agent, "leak", [leakKiB], (e) => e + leakKiB, `leak(${leakKiB})`)
  })

/** work(): the calls made so far. */
export const flakyTask = (run: Run, agent: SwarmAgent): Effect.Effect<void> =>
  changeState(run, agent, "work", [], (e) => e + 1, "work()")

/** ok() and divide(a, b) checked, one trap (`trapKind` 0..3: divide by zero, unreachable, out of bounds, overflow), ok() again. */
export const trapperTask = (run: Run, agent: SwarmAgent, a: number, b: number, trapKind: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { ledger } = run
    const ok = i32(yield* call(run, agent, "ok"))
    if (ok !== undefined) ledger.check(ok === 42, () => `${agent.id}.ok() → ${ok}`)
    const q = i32(yield* call(run, agent, "divide", [a, b]))
    if (q !== undefined) ledger.check(q === Math.trunc(a / b), () => `${agent.id}.divide(${a}, ${b}) → ${q}`)
    // one trap per task: counted as a failed invocation (Trap), the agent stays usable
    const [fn, args]: [string, Array<WasmValue>] =
      trapKind === 0
        ? ["divide", [a, 0]]
        : trapKind === 1
          ? ["crash", []]
          : trapKind === 2
            ? ["oob", []]
            : ["divide", [-2_147_483_648, -1]]
    const trapped = yield* call(run, agent, fn, args)
    ledger.check(
      !trapped.ok && trapped.tag !== "Defect",
      () => `${agent.id}.${fn} did not trap: ${JSON.stringify(trapped)}`
    )
    const after = i32(yield* call(run, agent, "ok"))
    if (after !== undefined) ledger.check(after === 42, () => `${agent.id}.ok() after a trap → ${after}`)
  })

/** The text written into the agent's memory (alloc + writeMemory), every result checked against `facts`, then dealloc. */
export const textTask = (run: Run, agent: SwarmAgent, text: string): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { ledger, runtime } = run
    const bytes = encoder.encode(text)
    const expected = facts(bytes)
    const ptr = i32(yield* call(run, agent, "alloc", [bytes.length]))
    if (ptr === undefined) return
    const written = yield* attempt(run, `writeMemory ${agent.id}`, runtime.writeMemory(agent.id, ptr, bytes))
    if (Option.isNone(written.value)) return
    const args = [ptr, bytes.length]
    const words = i32(yield* call(run, agent, "word_count", args))
    if (words !== undefined)
      ledger.check(
        words === expected.wordCount,
        () => `${agent.id}.word_count → ${words}, expected ${expected.wordCount}`
      )
    const unique = i32(yield* call(run, agent, "unique_words", args))
    if (unique !== undefined)
      ledger.check(
        unique === expected.uniqueWords,
        () => `${agent.id}.unique_words → ${unique}, expected ${expected.uniqueWords}`
      )
    const crc = i32(yield* call(run, agent, "checksum", args))
    if (crc !== undefined)
      ledger.check(
        crc >>> 0 === expected.checksum,
        () => `${agent.id}.checksum → ${crc >>> 0}, expected ${expected.checksum}`
      )
    const pair = i32(yield* call(run, agent, "top_word", args))
    if (pair !== undefined) {
      const word = yield* attempt(
        run,
        `readMemory ${agent.id}`,
        Effect.flatMap(runtime.readMemory(agent.id, pair, 8), (raw) => {
          const view = new DataView(raw.buffer, raw.byteOffset, 8)
          const at = view.getUint32(0, true)
          const length = view.getUint32(4, true)
          return length === 0
            ? Effect.succeed("")
            : Effect.map(runtime.readMemory(agent.id, at, length), (w) => decoder.decode(w))
        })
      )
      if (Option.isSome(word.value)) {
        const top = word.value.value
        ledger.check(top === expected.topWord, () => `${agent.id}.top_word → "${top}", expected "${expected.topWord}"`)
      }
    }
    yield* call(run, agent, "dealloc", args)
  })
