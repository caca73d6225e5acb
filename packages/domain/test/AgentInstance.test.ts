import { AgentInstance, AgentInstances, agentId, MemoryBudget } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"

const make = (critical?: boolean) =>
  new AgentInstance(
    "a#1" as never,
    agentId("a"),
    "m" as never,
    "h" as never,
    { memoryLimit: MemoryBudget.MiB, ...(critical === undefined ? {} : { critical }) },
    1_000,
    MemoryBudget.make(MemoryBudget.MiB),
    new AgentInstances.Mailbox()
  )

const refused = (to: string) => expect.objectContaining({ _tag: "InvalidStateTransition", to })

describe("AgentInstance lifecycle", () => {
  it("moves through the spec's state machine, one method per transition", () => {
    const i = make()
    expect(i.state).toBe("Starting")
    expect(i.pause()).toEqual(refused("Paused"))
    expect(i.start()).toEqual({ from: "Starting", to: "Running" })
    expect(i.start()).toEqual(refused("Running"))
    expect(i.pause()).toEqual({ from: "Running", to: "Paused" })
    expect(i.protect()).toEqual(refused("Critical"))
    expect(i.resume()).toEqual({ from: "Paused", to: "Running" })
    expect(i.protect()).toEqual({ from: "Running", to: "Critical" })
    expect(i.unprotect()).toEqual({ from: "Critical", to: "Running" })
    expect(i.stopped()).toEqual(refused("Stopped"))
    expect(i.stopping()).toEqual({ from: "Running", to: "Stopping" })
    expect(i.stopped()).toEqual({ from: "Stopping", to: "Stopped" })
    expect(i.stopping()).toEqual(refused("Stopping"))
    expect(i.fail()).toEqual(refused("Failed"))
    expect(i.state).toBe("Stopped")
  })

  it("a critical agent starts Critical; a failed start is Failed; rehydration only from Starting", () => {
    expect(make(true).start()).toEqual({ from: "Starting", to: "Critical" })
    const failed = make()
    expect(failed.fail()).toEqual({ from: "Starting", to: "Failed" })
    expect(failed.resume()).toEqual(refused("Running"))
    const back = make()
    expect(
      back.rehydrate("Paused", { invocationCount: 7, errorCount: 2, health: "Degraded", lastActivity: 5_000 })
    ).toEqual({ from: "Starting", to: "Paused" })
    expect([back.invocationCount, back.errorCount, back.health, back.lastActivity]).toEqual([7, 2, "Degraded", 5_000])
    expect(back.rehydrate("Running", { invocationCount: 0 })).toEqual(refused("Running"))
  })

  it("records activity, failures, memory and health only through its methods", () => {
    const i = make()
    i.recordCallStarted()
    i.recordCallFailed("trap")
    i.recordCallStarted()
    i.recordCallCompleted(2_000, 40)
    i.recordMemory(128 * 1024)
    expect([i.invocationCount, i.errorCount, i.windowInvocations, i.windowErrors, i.lastError]).toEqual([
      2,
      1,
      2,
      1,
      "trap"
    ])
    expect([i.lastActivity, i.fuelRemaining, i.budget.used]).toEqual([2_000, 40, 128 * 1024])
    i.recordHealthCheck({
      agentId: "a",
      status: "Degraded",
      checkedAt: 3_000,
      details: { memoryOk: true, responseOk: false, errorRateOk: true, lastError: "probe", consecutiveFailures: 1 }
    })
    expect([i.health, i.consecutiveFailures, i.windowInvocations, i.windowErrors, i.lastError]).toEqual([
      "Degraded",
      1,
      0,
      0,
      "probe"
    ])
    expect(() => {
      // @ts-expect-error the state is read-only from outside: it moves through the transitions
      i.state = "Running"
    }).toThrow(TypeError)
    expect(i.state).toBe("Starting")
  })
})

describe("AgentInstance collections", () => {
  it("revoked capabilities and prepared callers: empty until the first one, then kept per instance", () => {
    const i = make()
    const j = make()
    expect([...i.revoked]).toEqual([])
    expect(i.prepared.size).toBe(0)
    i.revoke("env.log")
    i.revoke("env.now")
    expect([...i.revoked]).toEqual(["env.log", "env.now"])
    // another instance's collections are its own (the shared empty ones were not written)
    expect(j.revoked.size).toBe(0)
    const prepare = (fn: string) => (fn === "f" ? () => ({ results: [fn], memoryBytes: 0 }) : undefined)
    const instance = { prepare } as never
    const caller = i.syncCaller(instance, "f")
    expect(caller).toBeDefined()
    expect(i.syncCaller(instance, "f")).toBe(caller)
    expect(i.syncCaller(instance, "g")).toBeUndefined()
    expect([...i.prepared.keys()]).toEqual(["f"])
    expect(j.prepared.size).toBe(0)
    // attaching an instance resolves callers anew
    i.attach(instance)
    expect(i.prepared.size).toBe(0)
  })
})

describe("AgentInstance mailbox", () => {
  it.effect("made on first use when none is given, then the same one; one permit: a second holder waits", () =>
    Effect.gen(function* () {
      const i = make()
      const lazy = new AgentInstance(
        "b#1" as never,
        agentId("b"),
        "m" as never,
        "h" as never,
        { memoryLimit: MemoryBudget.MiB },
        1_000,
        MemoryBudget.make(MemoryBudget.MiB)
      )
      const first = lazy.mailbox
      expect(lazy.mailbox).toBe(first)
      expect(make().mailbox).not.toBe(i.mailbox)
      // exclusive on the lazily made mailbox: one at a time, busy while held
      const order: Array<string> = []
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(
        lazy.exclusive(
          Effect.andThen(
            Effect.sync(() => order.push("first")),
            Deferred.await(gate)
          )
        )
      )
      yield* Effect.yieldNow
      expect(lazy.busy).toBe(1)
      expect(Option.isNone(yield* lazy.exclusiveIfAvailable(Effect.sync(() => order.push("refused"))))).toBe(true)
      const second = yield* Effect.forkChild(lazy.exclusive(Effect.sync(() => order.push("second"))))
      yield* Effect.yieldNow
      expect(order).toEqual(["first"])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(second)
      expect(order).toEqual(["first", "second"])
      expect(lazy.busy).toBe(0)
      expect(lazy.mailbox).toBe(first)
    })
  )
})
