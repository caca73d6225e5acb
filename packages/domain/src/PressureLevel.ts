/**
 * `PressureLevel` (spec "Domain Events / MemoryPressure"): how full the
 * resource pool is. Warning above 70 %, High above 85 %, Critical above 95 %
 * of the pool's total memory (thresholds are configurable on the pool).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

export const PressureLevel = Schema.Literals(["Normal", "Warning", "High", "Critical"])
export type PressureLevel = typeof PressureLevel.Type

/** Ratios (0..1) above which each level starts. */
export interface PressureThresholds {
  readonly warning: number
  readonly high: number
  readonly critical: number
}

/** The spec's thresholds: 0.70, 0.85, 0.95. */
export const defaultThresholds: PressureThresholds = { warning: 0.7, high: 0.85, critical: 0.95 }

/** The level for a usage ratio (strictly above a threshold enters its level). */
export const fromRatio = (ratio: number, t: PressureThresholds = defaultThresholds): PressureLevel =>
  ratio > t.critical ? "Critical" : ratio > t.high ? "High" : ratio > t.warning ? "Warning" : "Normal"
