/**
 * The swarm's plan — the workload before anything runs: which agents of
 * which fixture type (`planCounts`, `makePlan`), how much memory each gets
 * (`memoryOf`) and so how big the pool is (`poolFor`), and the schedule of
 * the rounds (which round pauses agents, resumes them, evicts one by hand,
 * breaks lifecycle agents' health, and which rounds leak memory toward
 * which pool usage).
 *
 * Every random choice comes from one seeded PRNG (`Prng.ts`): the same seed
 * drives the same plan and the same workload.
 *
 * @since 0.1.0
 */
import { type AgentId, MemoryBudget } from "@agent-runtime/domain"
import * as Prng from "./Prng.js"

/** The fixture agent types the swarm runs (packages/agents/README.md). */
export type AgentType = "counter" | "text" | "lifecycle" | "leaky" | "flaky" | "trapper"
export const agentTypes: ReadonlyArray<AgentType> = ["counter", "text", "lifecycle", "leaky", "flaky", "trapper"]

/** Whether `name` is one of `agentTypes`. */
export const isAgentType = (name: string): name is AgentType => (agentTypes as ReadonlyArray<string>).includes(name)

/** Defaults: 593 agents, seed 593, 12 rounds, 16 concurrent tasks. */
export const DEFAULT_AGENTS = 593
export const DEFAULT_SEED = 593
export const DEFAULT_ROUNDS = 12
export const DEFAULT_CONCURRENCY = 16
/** Fewest agents a plan can hold (at least one of every type, two leaky and two flaky). */
export const MIN_AGENTS = 12

/** One agent of the plan. */
export interface PlannedAgent {
  readonly id: AgentId
  readonly type: AgentType
  readonly critical: boolean
  /** Health checks a flaky agent passes before it breaks (1 or 2). */
  readonly flakyAfter: number
  /** A lifecycle agent that breaks its health in round 2 (and is recovered). */
  readonly breaksHealth: boolean
}

/** Mutable per-agent bookkeeping during a run. */
export interface SwarmAgent extends PlannedAgent {
  spawned: boolean
  paused: boolean
  /** counter: the count; lifecycle: its `state`; flaky: `work` calls; leaky: KiB leaked. */
  expected: number
  /** `expected` is known (false for a restored agent until its first result tells it). */
  known: boolean
}

/** A planned agent before its spawn: a lifecycle agent starts at state 100, the others at 0. */
export const toSwarmAgent = (agent: PlannedAgent): SwarmAgent => ({
  ...agent,
  spawned: false,
  paused: false,
  expected: agent.type === "lifecycle" ? 100 : 0,
  known: true
})

export const MiB = MemoryBudget.MiB
export const KiB = 1024

/** Memory config per type: limit and pool reservation, bytes. */
export const memoryOf = (type: AgentType): { readonly limit: number; readonly reservation: number } => {
  switch (type) {
    case "leaky":
      return { limit: 64 * MiB, reservation: 1 * MiB } // over-committed: grows far past its reservation
    case "text":
      return { limit: 4 * MiB, reservation: 1 * MiB }
    default:
      return { limit: 1 * MiB, reservation: 1 * MiB }
  }
}

/**
 * The swarm's pool over-commits (`ResourcePoolConfig.overcommit`), explicitly,
 * for its memory-pressure demo: each agent is admitted against its
 * `reservation`, not its `limit`, so the leaky agents (1 MiB reserved, 64 MiB
 * limit) can grow the pool's usage past its warning, high and critical
 * thresholds — and, between two pressure checks, past 100 % of the pool
 * (their growth is real memory; the report shows it as the *resident* peak,
 * next to the reservations, which never exceed the pool). Without it (the
 * runtime's default) every agent is admitted against its limit and the
 * pool's usage can never pass its total (spec invariant 1, issue 12 item 9).
 */
export const POOL_OVERCOMMIT = true

/** Pool usage right after spawning every planned agent. */
const SPAWN_USAGE = 0.62
/** Pool usage the leaky agents aim for in each leak round: past Warning, High, then Critical. */
const LEAK_TARGETS: ReadonlyArray<number> = [0.78, 0.9, 0.97]
/** A leaky agent stops growing at this share of its limit (its memory check stays healthy). */
export const LEAK_CAP = 0.8
/** The round some agents are paused in (and invoked, to see them refused). */
export const PAUSE_ROUND = 3
/** The round the paused agents are resumed in. */
export const RESUME_ROUND = 5
/** The round some lifecycle agents break their health (`breaksHealth`). */
export const BREAK_ROUND = 2
/** The round one agent (a trapper, preferably) is evicted by hand (`Manual`). */
export const MANUAL_EVICT_ROUND = 6

/** The pool (bytes, whole MiB) in which `reservedBytes` of reservations fill about 62 %. */
export const poolFor = (reservedBytes: number): number => Math.ceil(reservedBytes / SPAWN_USAGE / MiB) * MiB

/** The pool reservations of a plan, bytes (what the over-committed pool admits the agents against). */
export const reservedBytes = (plan: ReadonlyArray<PlannedAgent>): number =>
  plan.reduce((sum, agent) => sum + memoryOf(agent.type).reservation, 0)

/** The leak rounds of a workload of `rounds` rounds: the three before the last, each with its target pool usage (0..1). */
export const leakRounds = (rounds: number): ReadonlyArray<{ readonly round: number; readonly target: number }> =>
  LEAK_TARGETS.map((target, i) => ({ round: rounds - LEAK_TARGETS.length + i, target }))

/** How many agents are paused in `PAUSE_ROUND` out of `agents` (about 2 %, at least 2). */
export const pauseCount = (agents: number): number => Math.max(2, Math.round(agents * 0.02))

const pad = (i: number, width: number) => String(i).padStart(width, "0")

/** How many agents of each type: mostly counter/text/lifecycle; ~6 % leaky, ~5 % flaky, ~2 % trapper, ~1 % critical. */
export const planCounts = (total: number): Readonly<Record<AgentType, number>> => {
  const leaky = Math.max(2, Math.round(total * 0.06))
  const flaky = Math.max(2, Math.round(total * 0.05))
  const trapper = Math.max(1, Math.round(total * 0.02))
  const rest = total - leaky - flaky - trapper
  const counter = Math.round(rest * 0.4)
  const text = Math.round(rest * 0.3)
  return { counter, text, lifecycle: rest - counter - text, leaky, flaky, trapper }
}

/** The agents of a plan of `total`, ids `<type>-<n>` (zero-padded), drawing flaky and health-breaking choices from `prng`. */
export const makePlan = (total: number, prng: Prng.Prng): ReadonlyArray<PlannedAgent> => {
  const counts = planCounts(total)
  const width = String(total).length
  const criticalCount = Math.max(1, Math.round(total * 0.01))
  const plan: Array<PlannedAgent> = []
  for (const type of agentTypes) {
    for (let i = 1; i <= counts[type]; i++) {
      plan.push({
        id: `${type}-${pad(i, width)}` as AgentId,
        type,
        // critical: the first few counters and lifecycle agents, alternating
        critical: (type === "counter" || type === "lifecycle") && i <= Math.ceil(criticalCount / 2),
        flakyAfter: type === "flaky" ? prng.int(1, 2) : 0,
        breaksHealth: type === "lifecycle" && i > Math.ceil(criticalCount / 2) && prng.chance(0.08)
      })
    }
  }
  return plan
}

/** A workload: its size, seed and rounds, its plan, and the PRNG (drawn past the plan) that drives its rounds. */
export interface Workload {
  /** Agents planned (`agents` option, at least `MIN_AGENTS`). */
  readonly total: number
  readonly seed: number
  /** Rounds of the whole workload (at least `DEFAULT_ROUNDS`). */
  readonly rounds: number
  readonly plan: ReadonlyArray<PlannedAgent>
  readonly prng: Prng.Prng
}

/** The workload for the options (defaults: 593 agents, seed 593, 12 rounds). */
export const planWorkload = (options: {
  readonly agents?: number | undefined
  readonly seed?: number | undefined
  readonly rounds?: number | undefined
}): Workload => {
  const total = Math.max(MIN_AGENTS, Math.floor(options.agents ?? DEFAULT_AGENTS))
  const seed = Math.floor(options.seed ?? DEFAULT_SEED)
  const rounds = Math.max(DEFAULT_ROUNDS, Math.floor(options.rounds ?? DEFAULT_ROUNDS))
  const prng = Prng.make(seed)
  return { total, seed, rounds, plan: makePlan(total, prng), prng }
}
