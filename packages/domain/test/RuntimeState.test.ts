/**
 * Event ids stay unique across runtimes that share one runtime id (two
 * processes, or a restart, of host "rt-test"): each runtime draws a nonce
 * from Effect's `Random` when it is built, so `<runtimeId>:<nonce>:<n>`
 * never repeats between them — JetStream de-duplicates by event id and
 * would otherwise drop the second process's events.
 */
import { AgentRuntime, agentId, type RuntimeEvent } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { collecting, config, loadWith, makeTestEngine, MiB, runtimeLayer } from "./support/TestEngine.js"

const fns = { increment: { results: ["i32"] } }
const behaviour = { increment: () => [1] }

/** Builds a runtime with id "rt-test", spawns and evicts one agent, returns its events. */
const run = Effect.gen(function* () {
  const t = makeTestEngine()
  const ctx = yield* Layer.build(runtimeLayer(t))
  return yield* collecting(
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const m = yield* loadWith(t, "counter", fns, behaviour)
      yield* runtime.spawnAgent(agentId("a"), m, config(MiB))
      yield* runtime.evictAgent(agentId("a"), "Manual")
    })
  ).pipe(
    Effect.map(([, events]) => events),
    Effect.provideContext(ctx)
  )
})

describe("RuntimeState", () => {
  it.effect("event ids are <runtimeId>:<nonce>:<n>; two runtimes with one id never share an event id", () =>
    Effect.gen(function* () {
      const first: ReadonlyArray<RuntimeEvent> = yield* Effect.scoped(run)
      const second: ReadonlyArray<RuntimeEvent> = yield* Effect.scoped(run)
      expect(first.length).toBeGreaterThan(2)
      expect(second.length).toBe(first.length)
      const pattern = /^rt-test:[0-9a-f]{8}:\d+$/
      for (const e of [...first, ...second]) expect(e.eventId).toMatch(pattern)
      const nonceOf = (e: RuntimeEvent) => e.eventId.split(":")[1]
      expect(new Set(first.map(nonceOf)).size).toBe(1)
      expect(nonceOf(first[0]!)).not.toBe(nonceOf(second[0]!))
      const ids = new Set([...first, ...second].map((e) => e.eventId))
      expect(ids.size).toBe(first.length + second.length)
      // the sequence restarts per runtime: without the nonce these would collide
      expect(first.map((e) => e.eventId.split(":")[2])).toEqual(second.map((e) => e.eventId.split(":")[2]))
    })
  )
})
