/**
 * The ack log (`--ack-log <file>`): one line per acknowledged state change
 * of a swarm run, appended as it happens, and — when a run resumes with it —
 * the comparison of what the log acknowledged with what came back.
 *
 * Lines (UTF-8, `\n`-terminated):
 * - `<agentId> <value>` — a state-changing call returned `value` (after, with
 *   `--db`, its state was saved): `counter` `increment`/`add` (the count),
 *   `lifecycle` `bump` (its state), `flaky` `work` (calls made), `leaky`
 *   `leak` (KiB leaked);
 * - `<agentId> evicted <reason>` — the agent was evicted with a reason that
 *   deletes its saved state (every reason but `Shutdown` and `Migration`), written when the
 *   runtime's event stream delivers the `AgentEvicted` event.
 *
 * The states only grow, so an agent's state came back when the restored
 * agent answers with at least the last value acknowledged for it.
 *
 * @since 0.1.0
 */
import type { SwarmAgent } from "./Plan.js"

/** One line of the log. */
export type AckEntry =
  | { readonly _tag: "Ack"; readonly agentId: string; readonly value: number }
  | { readonly _tag: "Evicted"; readonly agentId: string; readonly reason: string }

/** The line of an acknowledged call. */
export const ackLine = (agentId: string, value: number): string => `${agentId} ${value}\n`

/** The line of an eviction that deleted the agent's saved state. */
export const evictedLine = (agentId: string, reason: string): string => `${agentId} evicted ${reason}\n`

/** The complete lines of a log (a last line cut by a kill has no `\n` yet and is left out; so are lines of another shape). */
export const parse = (text: string): Array<AckEntry> => {
  const complete = text.slice(0, text.lastIndexOf("\n") + 1)
  return complete.split("\n").flatMap((line): Array<AckEntry> => {
    const ack = /^(\S+) (-?\d+)$/.exec(line)
    if (ack !== null) return [{ _tag: "Ack", agentId: ack[1]!, value: Number(ack[2]) }]
    const evicted = /^(\S+) evicted (\S+)$/.exec(line)
    return evicted === null ? [] : [{ _tag: "Evicted", agentId: evicted[1]!, reason: evicted[2]! }]
  })
}

/** What came back of what the log acknowledged (counts of acknowledged calls, grouped by what happened to their agent). */
export interface AckComparison {
  /** Acknowledged calls in the log. */
  readonly calls: number
  /** Agents with at least one acknowledged call. */
  readonly agents: number
  /** Calls whose state came back: their agent answers with at least the last value acknowledged for it. */
  readonly cameBack: number
  /** Calls whose state did not: their agent answers with less, or is not back though the log has no eviction after its last call. */
  readonly lost: number
  /** Calls of agents evicted after them (health failure, pressure, by hand): their saved state was deleted on purpose. */
  readonly evicted: number
  /** Calls of agents that are back but cannot be read without changing them (flaky: no read-only getter; paused; a failed read). */
  readonly unchecked: number
  /** The first lost agents: the last value acknowledged and the one that came back (`null`: the agent is not back). */
  readonly lostAgents: ReadonlyArray<{
    readonly agentId: string
    readonly acknowledged: number
    readonly restored: number | null
  }>
}

const MAX_LOST_AGENTS = 10

/**
 * Compares the log with the restored agents: `agents` are the ones the run
 * took over (a known `expected` is the value read from the agent when it
 * was taken over), `live` every agent id the runtime has.
 */
export const compare = (
  entries: ReadonlyArray<AckEntry>,
  agents: ReadonlyArray<SwarmAgent>,
  live: ReadonlySet<string>
): AckComparison => {
  const last = new Map<string, AckEntry>()
  const calls = new Map<string, number>()
  for (const entry of entries) {
    last.set(entry.agentId, entry)
    if (entry._tag === "Ack") calls.set(entry.agentId, (calls.get(entry.agentId) ?? 0) + 1)
  }
  const read = new Map(agents.filter((a) => a.known).map((a) => [a.id as string, a.expected]))
  const result = { calls: 0, agents: calls.size, cameBack: 0, lost: 0, evicted: 0, unchecked: 0 }
  const lostAgents: Array<AckComparison["lostAgents"][number]> = []
  for (const [agentId, n] of calls) {
    result.calls += n
    const entry = last.get(agentId)!
    if (entry._tag === "Evicted") {
      result.evicted += n
      continue
    }
    const restored = read.get(agentId)
    if (restored !== undefined && restored >= entry.value) result.cameBack += n
    else if (restored === undefined && live.has(agentId)) result.unchecked += n
    else {
      result.lost += n
      if (lostAgents.length < MAX_LOST_AGENTS)
        lostAgents.push({ agentId, acknowledged: entry.value, restored: restored ?? null })
    }
  }
  return { ...result, lostAgents }
}
