/**
 * The BroadcastChannel event bus in real Chromium: two buses on one channel
 * name (as two tabs would open) see each other's events as decoded Schema
 * classes; local subscribers get their own bus's events; foreign traffic on
 * the channel is rejected, never thrown.
 */
import { AgentSpawned, EventBus, MemoryPressure, type DomainEvent } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { BroadcastEventBus } from "../src/index.js"

const spawned = new AgentSpawned({
  eventId: "e1" as never,
  timestamp: 1_700_000_000_000,
  runtimeId: "rt-a" as never,
  agentId: "a1" as never,
  moduleId: "m1" as never,
  instanceId: "i1" as never,
  memoryAllocated: 2 * 1024 * 1024
})

const pressure = new MemoryPressure({
  eventId: "e2" as never,
  timestamp: 1_700_000_000_001,
  runtimeId: "rt-a" as never,
  evictedAgents: ["a1" as never],
  passivatedAgents: [],
  memoryBefore: 900,
  memoryAfter: 100,
  totalMemory: 1000,
  pressureLevel: "High"
})

describe("BroadcastEventBus", () => {
  it.live(
    "two buses on one channel: events published on one are decoded on the other, in order; the publisher's own subscribers get them too",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const channel = `test-${Date.now()}`
          const tabA = yield* BroadcastEventBus.make({ channel })
          const tabB = yield* BroadcastEventBus.make({ channel })
          const onB = yield* Effect.forkScoped(Stream.runCollect(Stream.take(yield* tabB.subscribe, 2)))
          const onA = yield* Effect.forkScoped(Stream.runCollect(Stream.take(yield* tabA.subscribe, 2)))
          yield* Effect.yieldNow
          yield* tabA.publish(spawned)
          yield* tabA.publish(pressure)
          const received = (yield* Fiber.join(onB)) as ReadonlyArray<DomainEvent>
          expect(received[0]).toBeInstanceOf(AgentSpawned)
          expect(received[0]).toEqual(spawned)
          expect(received[1]).toBeInstanceOf(MemoryPressure)
          expect(received[1]).toEqual(pressure)
          expect(yield* Fiber.join(onA)).toEqual([spawned, pressure])
          expect(tabB.rejected()).toBe(0)
        })
      )
  )

  it.live("foreign or malformed messages on the channel are rejected and counted, the bus keeps working", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const channel = `test-foreign-${Date.now()}`
        const bus = yield* BroadcastEventBus.make({ channel })
        const next = yield* Effect.forkScoped(Stream.runHead(yield* bus.subscribe))
        yield* Effect.yieldNow
        const raw = new BroadcastChannel(channel)
        raw.postMessage({ _tag: "AgentSpawned", agentId: 42 })
        raw.postMessage("hello")
        raw.postMessage({ _tag: "Nope" })
        const other = yield* BroadcastEventBus.make({ channel })
        yield* other.publish(spawned)
        const head = yield* Fiber.join(next)
        raw.close()
        expect(head._tag).toBe("Some")
        expect(bus.rejected()).toBe(3)
      })
    )
  )

  it.effect("layer provides the EventBus port", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const bus = yield* EventBus
        const first = yield* Effect.forkScoped(Stream.runHead(yield* bus.subscribe))
        yield* Effect.yieldNow
        yield* bus.publish(spawned)
        expect(yield* Fiber.join(first)).toMatchObject({ _tag: "Some" })
      })
    ).pipe(Effect.provide(BroadcastEventBus.layer({ channel: `test-layer-${Date.now()}` })))
  )
})
