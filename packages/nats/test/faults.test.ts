/**
 * Faults: NATS down at start (a typed error naming the URL), and NATS lost
 * mid-run — the bus keeps every event published meanwhile and delivers it
 * after the reconnect; repository calls fail with a typed error instead of
 * hanging, and work again after the reconnect.
 */
import {
  AgentSpawned,
  agentId,
  InstanceRepository,
  moduleId,
  type EventId,
  type InstanceId,
  type RuntimeId
} from "@agent-runtime/domain"
import { Fixtures } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as net from "node:net"
import { afterAll, beforeAll } from "vitest"
import { Nats, NatsEventBus, NatsInstanceRepository } from "../src/index.js"
import { names } from "./support/layers.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

let server: RunningNatsServer
beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(() => server?.dispose())

const closedPort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer()
    s.listen(0, "127.0.0.1", () => {
      const address = s.address()
      s.close(() => resolve(typeof address === "object" && address !== null ? address.port : 1))
    })
  })

const spawned = (i: number) =>
  new AgentSpawned({
    eventId: `host-f:${i}` as EventId,
    timestamp: i,
    runtimeId: "host-f" as RuntimeId,
    agentId: agentId(`a${i}`),
    moduleId: moduleId("m"),
    instanceId: "i" as InstanceId,
    memoryAllocated: 1
  })

describe("faults", () => {
  it.live("NATS down at start: NatsUnavailable naming the URL", () =>
    Effect.gen(function* () {
      const url = `nats://127.0.0.1:${yield* Effect.promise(closedPort)}`
      const error = yield* Effect.flip(Effect.scoped(Nats.make({ servers: url, connectTimeoutMs: 1_000 })))
      expect(error._tag).toBe("NatsUnavailable")
      expect(error.url).toBe(url)
      expect(error.message).toContain(url)
    })
  )

  it.live(
    "NATS lost mid-run: events published meanwhile are kept and delivered after the reconnect; KV calls fail typed, then work again",
    () =>
      Effect.gen(function* () {
        const n = names()
        const nats = yield* Layer.build(
          Nats.layer({ servers: server.url, requestTimeoutMs: 1_000, reconnectWaitMs: 100 })
        )
        const ctx = yield* Layer.build(
          Layer.mergeAll(
            NatsEventBus.layer({ runtimeId: "host-f", stream: n.stream, subjectPrefix: n.subjectPrefix }),
            NatsInstanceRepository.layer({ bucket: n.instances, objectStore: n.snapshots })
          ).pipe(Layer.provide(Layer.succeedContext(nats)))
        )
        const bus = Context.get(ctx, NatsEventBus.NatsEventBus)
        const repo = Context.get(ctx, InstanceRepository)
        yield* bus.publish(spawned(0))
        yield* bus.flush

        yield* Effect.promise(() => server.stop())
        for (let i = 1; i <= 20; i++) yield* bus.publish(spawned(i))
        const s = Fixtures.snapshot("during-outage", { seed: 5, pages: [0] })
        const failed = yield* Effect.flip(repo.saveState(s.agentId, s))
        expect(failed._tag).toBe("RepositoryError")
        expect(bus.pending()).toBeGreaterThan(0)

        yield* Effect.promise(() => server.start())
        yield* bus.flush
        expect(bus.pending()).toBe(0)
        yield* repo.saveState(s.agentId, s)
        expect(Option.isSome(yield* repo.loadState(s.agentId))).toBe(true)

        const deliveries = yield* bus.consume({ durable: "after-outage" })
        const got = yield* Stream.runCollect(Stream.take(deliveries, 21))
        expect([...got].map((d) => d.event.eventId)).toEqual(Array.from({ length: 21 }, (_, i) => `host-f:${i}`))
      }).pipe(Effect.scoped),
    90_000
  )
})
