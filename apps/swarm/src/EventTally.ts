/**
 * What the runtime's event stream says happened during a swarm run:
 * `AgentEvicted` by reason (and agent type), `MemoryPressure` by level with
 * the highest `memoryBefore`, `HealthCheckCompleted` cycles and their
 * counts, `ModuleLoaded`. The report's eviction, pressure and health counts
 * come from here, not from the swarm's own bookkeeping.
 *
 * @since 0.1.0
 */
import { type EvictionReason, evictionReasons, keepsSavedState, type RuntimeEvent } from "@agent-runtime/domain"
import type { ReportedPressureLevel } from "./Report.js"

/** A record with a zero for every key. */
export const zeroes = <K extends string>(keys: ReadonlyArray<K>): Record<K, number> =>
  Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>

/** Adds `by` (default 1) to `record[key]`. */
export const bump = (record: Record<string, number>, key: string, by = 1): void => {
  record[key] = (record[key] ?? 0) + by
}

/** The agent type in an agent id `<type>-<n>`. */
export const typeOf = (agentId: string): string => agentId.replace(/-\d+$/, "")

/** Counts of the runtime's published events. */
export class EventTally {
  readonly evicted = zeroes(evictionReasons)
  readonly evictedByType: Record<EvictionReason, Record<string, number>> = Object.fromEntries(
    evictionReasons.map((r) => [r, {}])
  ) as Record<EvictionReason, Record<string, number>>
  readonly evictionOf = new Map<string, EvictionReason>()
  evictedTotal = 0
  readonly pressure: Record<ReportedPressureLevel, number> = { Warning: 0, High: 0, Critical: 0 }
  pressureTotal = 0
  /** Highest `memoryBefore` (bytes) of any `MemoryPressure` event. */
  peakUsed = 0
  readonly health = { cycles: 0, checks: 0, healthy: 0, degraded: 0, unhealthy: 0, failedEvicted: 0 }
  modulesLoaded = 0

  /**
   * `onEvicted` hears every `AgentEvicted` whose reason deletes the agent's
   * saved state (every reason but `Shutdown` and `Migration`), as the stream delivers it.
   */
  constructor(private readonly onEvicted: (agentId: string, reason: EvictionReason) => void = () => {}) {}

  add(e: RuntimeEvent): void {
    switch (e._tag) {
      case "AgentEvicted":
        this.evictedTotal++
        this.evicted[e.reason]++
        bump(this.evictedByType[e.reason], typeOf(e.agentId))
        this.evictionOf.set(e.agentId, e.reason)
        if (!keepsSavedState(e.reason)) this.onEvicted(e.agentId, e.reason)
        return
      case "MemoryPressure":
        this.pressureTotal++
        if (e.pressureLevel !== "Normal") this.pressure[e.pressureLevel]++
        this.peakUsed = Math.max(this.peakUsed, e.memoryBefore)
        return
      case "HealthCheckCompleted":
        this.health.cycles++
        this.health.checks += e.totalChecked
        this.health.healthy += e.healthyCount
        this.health.degraded += e.degradedCount
        this.health.unhealthy += e.unhealthyCount
        this.health.failedEvicted += e.failedAgents.length
        return
      case "ModuleLoaded":
        this.modulesLoaded++
        return
      default:
        return
    }
  }
}
