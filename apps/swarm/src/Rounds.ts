/**
 * The rounds of a run's workload, from `settings.startRound` to
 * `settings.rounds`. Each round: its lifecycle step (pause some agents in
 * `PAUSE_ROUND` and see their invocations refused, resume them in
 * `RESUME_ROUND`, evict one by hand in `MANUAL_EVICT_ROUND`), the leak
 * sizes of a leak round, every working agent's task (`Tasks.ts`: the leaks
 * first, then everyone else's work in random order), then the supervisor's
 * control loop — `handleMemoryPressure`, then `checkHealth` (and, on a
 * persistent run, one metrics sample and the checkpoint: how far the
 * workload got, for `--resume`).
 *
 * Pressure is handled by this control loop (explicit `handleMemoryPressure`
 * after each round, `autoPressure: false`): a round's leaks land first,
 * every live agent then does its work, and the runtime's eviction order
 * (unhealthy → least recently active → largest) picks the leaky agents —
 * the ones that idled longest since their leak — instead of whichever
 * agents a mid-round automatic pass would find idle. It also keeps a
 * seeded run deterministic.
 *
 * @since 0.1.0
 */
import type { AgentInfo } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { bump } from "./EventTally.js"
import { attempt, call, note, type Run } from "./Ledger.js"
import { saveCheckpoint } from "./Persistence.js"
import {
  KiB,
  LEAK_CAP,
  leakRounds,
  MANUAL_EVICT_ROUND,
  memoryOf,
  PAUSE_ROUND,
  pauseCount,
  RESUME_ROUND,
  type SwarmAgent
} from "./Plan.js"
import type * as Prng from "./Prng.js"
import { task } from "./Tasks.js"

/** The live agents by id. */
type Live = ReadonlyMap<string, AgentInfo>

const liveInfo = (run: Run): Effect.Effect<Live> =>
  Effect.map(run.runtime.agents, (infos) => new Map(infos.map((i) => [i.agentId as string, i])))

/** Running or Critical: an agent that takes work. */
const isWorking = (info: AgentInfo | undefined) =>
  info !== undefined && (info.state === "Running" || info.state === "Critical")

/** Works every round from `startRound` to `rounds` on the spawned (or taken-over) agents. */
export const runRounds = Effect.fn("Swarm.runRounds")(function* (run: Run, spawned: ReadonlyArray<SwarmAgent>) {
  const { settings } = run
  const pausing = pauseCount(settings.stored?.resume === true ? spawned.length : settings.total)
  yield* saveCheckpoint(run, settings.startRound - 1)
  for (let round = settings.startRound; round <= settings.rounds; round++) {
    yield* runRound(run, spawned, round, pausing)
    yield* saveCheckpoint(run, round)
  }
})

/** One round: its lifecycle step, the tasks, the control loop, and a progress note. */
export const runRound = Effect.fn("Swarm.runRound")(function* (
  run: Run,
  spawned: ReadonlyArray<SwarmAgent>,
  round: number,
  pausing: number
) {
  const { settings, ledger, runtime } = run
  const { invocations } = ledger
  const before = { ok: invocations.ok, failed: invocations.total - invocations.ok }
  if (round === PAUSE_ROUND) yield* pauseSome(run, spawned, yield* liveInfo(run), pausing)
  if (round === RESUME_ROUND) yield* resumePaused(run, spawned)
  if (round === MANUAL_EVICT_ROUND) yield* evictOne(run, spawned, yield* liveInfo(run))
  const live = yield* liveInfo(run)

  // the round's tasks: the leaks first, then everyone else's work (all live agents in leak rounds, ~80 % otherwise)
  const { leaking, leakKiB } = yield* leakSizes(run, spawned, live, round)
  const workers = spawned.filter((a) => !a.paused && isWorking(live.get(a.id)))
  const tasks = roundWorkers(settings.prng, workers, leaking).map((agent) =>
    task(run, agent, round, leakKiB.get(agent.id) ?? 0)
  )
  settings.progress({ _tag: "Phase", name: `round ${round}/${settings.rounds}`, total: tasks.length })
  let done = 0
  yield* Effect.forEach(
    tasks,
    (t) => Effect.tap(t, () => Effect.sync(() => settings.progress({ _tag: "Advance", done: ++done }))),
    {
      concurrency: settings.concurrency,
      discard: true
    }
  )

  ledger.samplePeak((yield* runtime.stats).memory.used)
  const pressured = yield* controlLoop(run)
  const stats = yield* runtime.stats
  ledger.samplePeak(stats.memory.used)
  yield* note(
    run,
    `round ${round}/${settings.rounds}: ${invocations.ok - before.ok} ok, ${invocations.total - invocations.ok - before.failed} failed; ` +
      `pool ${((stats.memory.used / stats.memory.total) * 100).toFixed(1)} %` +
      (pressured > 0 ? `, ${pressured} evicted under pressure` : "") +
      `; ${stats.agents} live`
  )
})

/**
 * The agents of `workers` that work in a round, in the order their tasks
 * run: every leaky agent first, then the others shuffled, each kept with
 * chance 0.8 (all of them in a leak round, `leaking`). Draws from `prng`
 * (the shuffle, then one draw per non-leaky agent), before any task is built.
 */
export const roundWorkers = (
  prng: Prng.Prng,
  workers: ReadonlyArray<SwarmAgent>,
  leaking: boolean
): Array<SwarmAgent> => {
  const sample = leaking ? 1 : 0.8
  const ordered = [
    ...workers.filter((a) => a.type === "leaky"),
    ...prng.shuffle(workers.filter((a) => a.type !== "leaky"))
  ]
  return ordered.filter((a) => a.type === "leaky" || prng.chance(sample))
}

/** The supervisor's control loop: pressure, then health (a persistent run also samples the metrics). Returns the agents evicted under pressure. */
const controlLoop = (run: Run): Effect.Effect<number> =>
  Effect.gen(function* () {
    const { runtime, ledger } = run
    const pressured = Option.getOrElse(
      (yield* attempt(run, "handleMemoryPressure", runtime.handleMemoryPressure)).value,
      () => []
    )
    yield* attempt(run, "checkHealth", runtime.checkHealth)
    if (run.settings.stored !== undefined) {
      // a persistent run also keeps the runtime's metrics: one sample per round
      const sampled = yield* attempt(run, "recordMetrics", runtime.recordMetrics)
      if (Option.isSome(sampled.value)) ledger.metricsSamples++
      else bump(ledger.persistenceFailures, `recordMetrics:${sampled.tag}`)
    }
    return pressured.length
  })

/** Pauses `count` random non-critical counter/text/lifecycle agents and invokes each once: it must be refused (`AgentNotRunning`). */
const pauseSome = (run: Run, spawned: ReadonlyArray<SwarmAgent>, live: Live, count: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { lifecycle } = run.ledger
    const candidates = run.settings.prng
      .shuffle(
        spawned.filter(
          (a) => !a.critical && ["counter", "text", "lifecycle"].includes(a.type) && isWorking(live.get(a.id))
        )
      )
      .slice(0, count)
    for (const agent of candidates) {
      const paused = yield* attempt(run, `pause ${agent.id}`, run.runtime.pause(agent.id))
      if (Option.isNone(paused.value)) {
        bump(lifecycle.failed, `pause:${paused.tag}`)
        continue
      }
      agent.paused = true
      lifecycle.paused++
      const refused = yield* call(
        run,
        agent,
        agent.type === "text" ? "word_count" : agent.type === "lifecycle" ? "state" : "get",
        agent.type === "text" ? [0, 0] : []
      )
      if (!refused.ok && refused.tag === "AgentNotRunning") lifecycle.refusedWhilePaused++
      else run.ledger.crash(`invoking paused agent ${agent.id} was not refused: ${JSON.stringify(refused)}`)
    }
    yield* note(
      run,
      `paused ${lifecycle.paused} agents; ${lifecycle.refusedWhilePaused} invocations of them refused (AgentNotRunning)`
    )
  })

/** Resumes every paused agent. */
const resumePaused = (run: Run, spawned: ReadonlyArray<SwarmAgent>): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { lifecycle } = run.ledger
    for (const agent of spawned.filter((a) => a.paused)) {
      const resumed = yield* attempt(run, `resume ${agent.id}`, run.runtime.resume(agent.id))
      if (Option.isSome(resumed.value)) {
        agent.paused = false
        lifecycle.resumed++
      } else bump(lifecycle.failed, `resume:${resumed.tag}`)
    }
    yield* note(run, `resumed ${lifecycle.resumed} agents`)
  })

/** Evicts one live non-critical agent by hand (`Manual`): a random trapper, else the first unpaused one. */
const evictOne = (run: Run, spawned: ReadonlyArray<SwarmAgent>, live: Live): Effect.Effect<void> =>
  Effect.gen(function* () {
    const victim =
      run.settings.prng.shuffle(spawned.filter((a) => !a.critical && a.type === "trapper" && live.has(a.id)))[0] ??
      spawned.find((a) => !a.critical && !a.paused && live.has(a.id))
    if (victim === undefined) return
    const evicted = yield* attempt(run, `evict ${victim.id}`, run.runtime.evictAgent(victim.id, "Manual"))
    if (Option.isNone(evicted.value)) bump(run.ledger.lifecycle.failed, `evict:${evicted.tag}`)
  })

/**
 * KiB each working leaky agent leaks this round: in a leak round, what the
 * pool needs to reach the round's target usage, spread over them (growth
 * inside an agent's reservation is free; none grows past `LEAK_CAP` of its
 * limit; at least 64 KiB); otherwise 32 KiB each.
 */
const leakSizes = (run: Run, spawned: ReadonlyArray<SwarmAgent>, live: Live, round: number) =>
  Effect.gen(function* () {
    const leak = leakRounds(run.settings.rounds).find((l) => l.round === round)
    const leakKiB = new Map<string, number>()
    const leakers = spawned.filter((a) => a.type === "leaky" && isWorking(live.get(a.id)))
    if (leak !== undefined && leakers.length > 0) {
      const stats = yield* run.runtime.stats
      const need = Math.max(0, leak.target * stats.memory.total - stats.memory.used)
      for (const agent of leakers) {
        const info = live.get(agent.id)!
        const below = Math.max(0, memoryOf("leaky").reservation - info.budget.used)
        const room = Math.max(0, LEAK_CAP * info.budget.limit - info.budget.used)
        leakKiB.set(agent.id, Math.max(64, Math.ceil(Math.min(room, need / leakers.length + below) / KiB)))
      }
    } else {
      for (const agent of leakers) leakKiB.set(agent.id, 32)
    }
    return { leaking: leak !== undefined, leakKiB }
  })
