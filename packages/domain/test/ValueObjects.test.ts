import {
  AgentInstances,
  agentId,
  checkArguments,
  checkValue,
  Health,
  HealthChecker,
  MemoryBudget,
  ModuleCache,
  moduleHash,
  PressureLevels,
  ResourcePool
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"

const MiB = 1024 * 1024
const pool = (total = 10 * MiB) =>
  new ResourcePool({ totalMemory: total, maxThreads: 2, maxHandles: 3, thresholds: PressureLevels.defaultThresholds })

describe("MemoryBudget", () => {
  it("records usage and peak, utilization and remaining", () => {
    let b = MemoryBudget.make(4 * MiB)
    b = MemoryBudget.recordUsage(b, 3 * MiB)
    b = MemoryBudget.recordUsage(b, MiB)
    expect(b).toEqual({ limit: 4 * MiB, used: MiB, peak: 3 * MiB })
    expect(MemoryBudget.utilization(b)).toBe(0.25)
    expect(MemoryBudget.remaining(b)).toBe(3 * MiB)
    expect(MemoryBudget.isExceeded(b)).toBe(false)
    b = MemoryBudget.recordUsage(b, 5 * MiB)
    expect(MemoryBudget.isExceeded(b)).toBe(true)
    expect(MemoryBudget.remaining(b)).toBe(0)
  })
})

describe("PressureLevel", () => {
  it("uses the spec's thresholds: Warning > 70 %, High > 85 %, Critical > 95 %", () => {
    expect(PressureLevels.fromRatio(0.7)).toBe("Normal")
    expect(PressureLevels.fromRatio(0.71)).toBe("Warning")
    expect(PressureLevels.fromRatio(0.85)).toBe("Warning")
    expect(PressureLevels.fromRatio(0.86)).toBe("High")
    expect(PressureLevels.fromRatio(0.96)).toBe("Critical")
  })
})

describe("ResourcePool", () => {
  it("reserves atomically and refuses beyond the total with requested/available", () => {
    const p = pool()
    expect(p.allocateMemory(agentId("a"), 6 * MiB, 0)).not.toBeInstanceOf(Error)
    const refused = p.allocateMemory(agentId("b"), 5 * MiB, 0)
    expect(refused).toMatchObject({ _tag: "InsufficientMemory", requested: 5 * MiB, available: 4 * MiB })
    expect(p.usedMemory()).toBe(6 * MiB)
    expect(p.releaseMemory(agentId("a"))).toBe(6 * MiB)
    expect(p.usedMemory()).toBe(0)
    expect(p.releaseMemory(agentId("a"))).toBe(0)
  })

  it("counts max(reservation, resident) per owner, so growth beyond a reservation raises usage and pressure", () => {
    const p = pool()
    p.allocateMemory(agentId("a"), MiB, 0)
    p.recordResident(agentId("a"), 512 * 1024)
    expect(p.usedMemory()).toBe(MiB)
    p.recordResident(agentId("a"), 8 * MiB)
    expect(p.usedMemory()).toBe(8 * MiB)
    expect(p.pressureLevel()).toBe("Warning")
    expect(p.isUnderPressure()).toBe(true)
    p.recordResident(agentId("a"), 9.9 * MiB)
    expect(p.isCritical()).toBe(true)
    expect(p.reservedMemory()).toBe(MiB)
    expect(p.releaseMemory(agentId("a"))).toBe(9.9 * MiB)
    expect(p.usedMemory()).toBe(0)
  })

  it("limits threads and handles", () => {
    const p = pool()
    expect(p.acquireThreads(2)).toBeUndefined()
    expect(p.acquireThreads(1)).toMatchObject({ _tag: "ResourceExhausted", resource: "threads" })
    p.releaseThreads(1)
    expect(p.acquireThreads(1)).toBeUndefined()
    expect(p.acquireHandles(4)).toMatchObject({ _tag: "ResourceExhausted", resource: "handles", available: 3 })
  })
})

describe("AgentInstance transitions", () => {
  const t = AgentInstances.transition
  it("follows the spec's state machine", () => {
    expect(t("a", "Starting", "start")).toBe("Running")
    expect(t("a", "Running", "pause")).toBe("Paused")
    expect(t("a", "Paused", "resume")).toBe("Running")
    expect(t("a", "Paused", "start")).toBe("Running")
    expect(t("a", "Running", "protect")).toBe("Critical")
    expect(t("a", "Critical", "unprotect")).toBe("Running")
    expect(t("a", "Stopped", "stop")).toBe("Stopped")
    expect(t("a", "Running", "fail")).toBe("Failed")
    for (const [from, action] of [
      ["Running", "start"],
      ["Running", "resume"],
      ["Paused", "pause"],
      ["Stopped", "start"],
      ["Failed", "resume"],
      ["Stopped", "fail"]
    ] as const) {
      expect(t("a", from, action)).toMatchObject({ _tag: "InvalidStateTransition", from })
    }
    expect(AgentInstances.isInvocable("Critical")).toBe(true)
    expect(AgentInstances.isInvocable("Paused")).toBe(false)
  })
})

describe("Health", () => {
  it("from_details: all OK → Healthy; > 3 consecutive failures → Unhealthy; else Degraded", () => {
    const d = { memoryOk: true, responseOk: false, errorRateOk: true, lastError: "x", consecutiveFailures: 3 }
    expect(Health.fromDetails(d)).toBe("Degraded")
    expect(Health.fromDetails({ ...d, consecutiveFailures: 4 })).toBe("Unhealthy")
    expect(Health.fromDetails({ ...d, responseOk: true })).toBe("Healthy")
  })

  it("evaluate carries failures across checks and decides recover / fail", () => {
    const s = HealthChecker.defaultSettings
    let failures = 0
    const actions: Array<string> = []
    for (let k = 0; k < 6; k++) {
      const r = HealthChecker.evaluate(
        {
          memoryUtilization: 0.1,
          windowInvocations: 0,
          windowErrors: 0,
          previousFailures: failures,
          probe: { _tag: "Returned", results: [503], elapsedMs: 1 }
        },
        s
      )
      failures = r.details.consecutiveFailures
      actions.push(`${r.status}/${r.action}`)
    }
    expect(actions).toEqual([
      "Degraded/none",
      "Degraded/none",
      "Degraded/none",
      "Unhealthy/recover",
      "Unhealthy/recover",
      "Unhealthy/fail"
    ])
    const ok = HealthChecker.evaluate(
      {
        memoryUtilization: 0.1,
        windowInvocations: 0,
        windowErrors: 0,
        previousFailures: 5,
        probe: { _tag: "NoProbe" }
      },
      s
    )
    expect(ok.details.consecutiveFailures).toBe(0)
    expect(ok.status).toBe("Healthy")
  })

  it("judges memory utilization and error rate", () => {
    const s = HealthChecker.defaultSettings
    const mem = HealthChecker.evaluate(
      {
        memoryUtilization: 0.96,
        windowInvocations: 0,
        windowErrors: 0,
        previousFailures: 0,
        probe: { _tag: "NoProbe" }
      },
      s
    )
    expect(mem.details.memoryOk).toBe(false)
    const errors = HealthChecker.evaluate(
      { memoryUtilization: 0, windowInvocations: 10, windowErrors: 6, previousFailures: 0, probe: { _tag: "NoProbe" } },
      s
    )
    expect(errors.details.errorRateOk).toBe(false)
    const few = HealthChecker.evaluate(
      { memoryUtilization: 0, windowInvocations: 2, windowErrors: 2, previousFailures: 0, probe: { _tag: "NoProbe" } },
      s
    )
    expect(few.details.errorRateOk).toBe(true)
  })
})

describe("WasmValue", () => {
  it("checks each value type", () => {
    expect(checkValue("i32", 1)).toBeUndefined()
    expect(checkValue("i32", 0xffffffff)).toBeUndefined()
    expect(checkValue("i32", -(2 ** 31))).toBeUndefined()
    expect(checkValue("i32", "1")).toMatch(/expected i32/)
    expect(checkValue("i32", 2 ** 32)).toMatch(/integer in/)
    expect(checkValue("i32", NaN)).toMatch(/integer in/)
    expect(checkValue("i64", 1)).toMatch(/bigint/)
    expect(checkValue("i64", -(2n ** 63n))).toBeUndefined()
    expect(checkValue("i64", -(2n ** 63n) - 1n)).toMatch(/bigint in/)
    expect(checkValue("f32", Infinity)).toBeUndefined()
    expect(checkValue("f64", 1n)).toMatch(/expected f64/)
    expect(checkValue("v128", 0)).toMatch(/v128/)
    expect(checkValue("funcref", null)).toBeUndefined()
    expect(checkValue("funcref", 1)).toMatch(/funcref/)
    expect(checkValue("externref", { any: 1 })).toBeUndefined()
  })

  it("checks arity and reports the first bad argument", () => {
    const sig = { params: ["i32", "i64"] as const, results: [] }
    expect(checkArguments(sig, [1])).toEqual({ index: -1, message: "expected 2 argument(s), got 1" })
    expect(checkArguments(sig, [1, 2])?.index).toBe(1)
    expect(checkArguments(sig, [1, 2n])).toBeUndefined()
  })
})

describe("ModuleCache", () => {
  const compiled = (hash: string, byteLength: number) => ({ hash: moduleHash(hash), byteLength, handle: hash })

  it("is bounded in bytes and evicts the least recently used", () => {
    const c = new ModuleCache(100)
    c.set("a", compiled("a", 60), 0)
    c.set("b", compiled("b", 30), 0)
    expect(c.get("a", 1)?.hits).toBe(1)
    c.set("c", compiled("c", 30), 2) // over 100 bytes: b is the least recently used
    expect(c.peek("b")).toBeUndefined()
    expect(c.peek("a")).toBeDefined()
    expect(c.stats()).toMatchObject({ entries: 2, bytes: 90, hits: 1, evictions: 1 })
    expect(c.get("zz", 3)).toBeUndefined()
    expect(c.stats().misses).toBe(1)
    c.set("huge", compiled("huge", 1000), 4)
    expect(c.peek("huge")).toBeUndefined()
  })

  it("drops entries idle longer than a limit, by last access", () => {
    const c = new ModuleCache(1000)
    c.set("a", compiled("a", 1), 0)
    c.set("b", compiled("b", 1), 0)
    c.get("a", 50)
    expect(c.dropIdle(100, 60)).toEqual(["b"])
    expect(c.entries().map((e) => e.key)).toEqual(["a"])
  })
})
