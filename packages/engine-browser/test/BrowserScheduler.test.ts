/**
 * The page's Effect scheduler in real Chromium: yields go through a
 * `MessageChannel` (no `setTimeout` clamping), in order, cancellable, and
 * programs run with the layer use it — a long fiber still yields.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Scheduler from "effect/Scheduler"
import { BrowserScheduler } from "../src/index.js"

const immediate = () => {
  const f = BrowserScheduler.messageChannelImmediate()
  if (f === undefined) throw new Error("Chromium has MessageChannel")
  return f
}

describe("BrowserScheduler", () => {
  it("messageChannelImmediate runs callbacks in later tasks, in order; a cancelled one never runs", async () => {
    const schedule = immediate()
    const ran: Array<string> = []
    schedule(() => ran.push("a"))
    const cancel = schedule(() => ran.push("b"))
    schedule(() => ran.push("c"))
    cancel()
    expect(ran).toEqual([]) // not synchronously
    await new Promise<void>((resolve) => schedule(resolve))
    expect(ran).toEqual(["a", "c"])
  })

  it("programs run with the layer get the MessageChannel scheduler; a fiber's yield lets queued tasks run first", async () => {
    const runtime = ManagedRuntime.make(BrowserScheduler.layer)
    try {
      const scheduler = await runtime.runPromise(Effect.map(Effect.service(Scheduler.Scheduler), (s) => s))
      expect(scheduler).toBeInstanceOf(Scheduler.MixedScheduler)
      const mixed = scheduler as Scheduler.MixedScheduler
      expect(mixed.executionMode).toBe("async")
      expect(mixed.setImmediate).not.toBe(new Scheduler.MixedScheduler().setImmediate)
      // a fiber of many more operations than one yield budget (2048) finishes with the right result
      const sum = await runtime.runPromise(
        Effect.gen(function* () {
          let total = 0
          for (let i = 0; i < 20_000; i++) total += yield* Effect.sync(() => i)
          return total
        })
      )
      expect(sum).toBe((20_000 * 19_999) / 2)
    } finally {
      await runtime.dispose()
    }
  })

  it("yieldNow goes through the scheduler's immediate: a task queued on it before runs before the fiber resumes", async () => {
    const schedule = immediate()
    const order: Array<string> = []
    const program = Effect.gen(function* () {
      schedule(() => order.push("queued before the yield"))
      yield* Effect.yieldNow
      order.push("fiber resumed")
    })
    await Effect.runPromise(
      program.pipe(Effect.provide(Layer.succeed(Scheduler.Scheduler, new Scheduler.MixedScheduler("async", schedule))))
    )
    expect(order).toEqual(["queued before the yield", "fiber resumed"])
  })
})
