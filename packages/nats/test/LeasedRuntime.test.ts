/**
 * Two runtime hosts (each its own connections) on one nats-server: spawning
 * an agent held by the other host is refused with its owner; racing spawns
 * of one agent leave exactly one instance; an eviction gives the agent back.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  AgentRuntimes,
  agentId,
  EventBuses,
  ExecutionAuthorizers,
  InstanceRepositories,
  makeMetadata,
  MemoryBudget,
  MetricsRepositories
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { afterAll, beforeAll } from "vitest"
import { Kvm } from "@nats-io/kv"
import { InstanceRepository } from "@agent-runtime/domain"
import { LeasedRuntime, Leases, Nats, NatsInstanceRepository, NatsModuleRepository } from "../src/index.js"
import { keyOf } from "../src/internal/errors.js"
import { connection, names } from "./support/layers.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

let server: RunningNatsServer
beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(() => server?.dispose())

/** A runtime host `id`: shared modules and leases on NATS, the rest in memory. */
const host = (n: ReturnType<typeof names>, id: string) =>
  Effect.gen(function* () {
    const nats = connection(server.url, id)
    const ports = Layer.mergeAll(
      NatsModuleRepository.layer({ bucket: n.modules, objectStore: n.modules }).pipe(Layer.provide(nats)),
      InstanceRepositories.layerMemory,
      MetricsRepositories.layerMemory,
      EventBuses.layerMemory,
      ExecutionAuthorizers.layerAllowAll
    )
    const runtime = AgentRuntimes.layer({ id }).pipe(
      Layer.provide(ports),
      Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
    )
    const leased = LeasedRuntime.layer.pipe(
      Layer.provideMerge(
        Layer.mergeAll(runtime, Leases.layer({ hostId: id, bucket: n.leases }).pipe(Layer.provide(nats)))
      )
    )
    const ctx = yield* Layer.build(leased)
    return { leased: Context.get(ctx, LeasedRuntime.LeasedRuntime), leases: Context.get(ctx, Leases.Leases) }
  })

describe("LeasedRuntime", () => {
  it.live(
    "an agent lives on one host: the other is refused with the owner, racing spawns leave one instance, eviction gives it back",
    () =>
      Effect.gen(function* () {
        const n = names()
        const a = yield* host(n, "host-a")
        const b = yield* host(n, "host-b")
        const meta = makeMetadata({ name: "counter", version: "1.0.0" })
        const m = yield* a.leased.runtime.loadModule(readAgent("counter"), meta)
        yield* b.leased.runtime.loadModule(readAgent("counter"), meta)
        const config = { memoryLimit: 16 * MemoryBudget.MiB }

        yield* a.leased.spawnAgent(agentId("x"), m, config)
        expect(yield* a.leased.runtime.invoke(agentId("x"), "increment", [])).toEqual([1])
        // spawning it again here fails in the runtime, and the lease stays this host's
        expect((yield* Effect.flip(a.leased.spawnAgent(agentId("x"), m, config)))._tag).toBe("AgentAlreadyExists")
        expect(a.leased.held()).toContain("x")
        const refused = yield* Effect.flip(b.leased.spawnAgent(agentId("x"), m, config))
        expect(refused).toMatchObject({ _tag: "AgentAlreadyExists", agentId: "x", owner: "host-a" })
        expect((yield* Effect.flip(b.leased.runtime.agent(agentId("x"))))._tag).toBe("AgentNotFound")

        // racing spawns of one agent on both hosts: one instance in all
        const race = yield* Effect.all(
          [
            Effect.result(a.leased.spawnAgent(agentId("y"), m, config)),
            Effect.result(b.leased.spawnAgent(agentId("y"), m, config))
          ],
          { concurrency: "unbounded" }
        )
        expect(race.filter((r) => r._tag === "Success").length).toBe(1)
        const live = [
          ...(yield* a.leased.runtime.agents).filter((x) => x.agentId === "y"),
          ...(yield* b.leased.runtime.agents).filter((x) => x.agentId === "y")
        ]
        expect(live.length).toBe(1)

        yield* a.leased.evictAgent(agentId("x"), "Manual")
        expect(a.leased.held()).not.toContain("x")
        expect(yield* b.leases.owner(agentId("x"))).toEqual(Option.none())
        yield* b.leased.spawnAgent(agentId("x"), m, config)
        expect(Option.map(yield* a.leases.owner(agentId("x")), (o) => o.owner)).toEqual(Option.some("host-b"))

        // an eviction the runtime does itself (not through the wrapper) gives the lease back too
        yield* a.leased.spawnAgent(agentId("z"), m, config)
        yield* a.leased.runtime.evictAgent(agentId("z"), "HealthFailure")
        let released = false
        for (let i = 0; i < 100 && !released; i++) {
          released = Option.isNone(yield* b.leases.owner(agentId("z")))
          if (!released) yield* Effect.sleep("50 millis")
        }
        expect(released).toBe(true)
        expect(a.leased.held()).not.toContain("z")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a lease lost on renewal evicts the local instance and keeps the saved state, which the new owner continues from",
    () =>
      Effect.gen(function* () {
        const n = names()
        /** A host whose agents' states are saved after every call in the shared KV bucket. */
        const persistentHost = (id: string) =>
          Effect.gen(function* () {
            const nats = connection(server.url, id)
            const ports = Layer.mergeAll(
              NatsModuleRepository.layer({ bucket: n.modules, objectStore: n.modules }),
              NatsInstanceRepository.layer({ bucket: n.instances, objectStore: n.snapshots }),
              Leases.layer({ hostId: id, bucket: n.leases, ttlMs: 3_000, renewEveryMs: 100 })
            ).pipe(Layer.provideMerge(nats))
            const runtime = AgentRuntimes.layer({ id, persistence: { snapshotAfterCalls: true } }).pipe(
              Layer.provideMerge(
                Layer.mergeAll(
                  ports,
                  MetricsRepositories.layerMemory,
                  EventBuses.layerMemory,
                  ExecutionAuthorizers.layerAllowAll
                )
              ),
              Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
            )
            const ctx = yield* Layer.build(LeasedRuntime.layer.pipe(Layer.provideMerge(runtime)))
            return {
              leased: Context.get(ctx, LeasedRuntime.LeasedRuntime),
              repo: Context.get(ctx, InstanceRepository),
              nats: Context.get(ctx, Nats.Nats)
            }
          })
        const a = yield* persistentHost("host-a")
        const b = yield* persistentHost("host-b")
        const m = yield* a.leased.runtime.loadModule(
          readAgent("counter"),
          makeMetadata({ name: "counter", version: "1.0.0" })
        )
        yield* b.leased.runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
        yield* a.leased.spawnAgent(agentId("s"), m, { memoryLimit: 2 * MemoryBudget.MiB })
        for (let i = 0; i < 3; i++) yield* a.leased.runtime.invoke(agentId("s"), "increment", [])

        // host A is cut off long enough for its lease to go (here: deleted behind its back) and B takes the agent
        const kv = yield* Effect.promise(() => new Kvm(a.nats.jetstream).open(n.leases))
        yield* Effect.promise(() => kv.delete(keyOf("s")))
        yield* b.leased.activate(agentId("s"))
        expect(yield* b.leased.runtime.invoke(agentId("s"), "get", [])).toEqual([3])

        // A's next renewal finds the lease lost: its instance goes, the saved state (B's now) stays
        let gone = false
        for (let i = 0; i < 100 && !gone; i++) {
          gone = (yield* a.leased.runtime.agents).every((x) => x.agentId !== "s")
          if (!gone) yield* Effect.sleep("50 millis")
        }
        expect(gone).toBe(true)
        expect(a.leased.held()).not.toContain("s")
        expect(Option.isSome(yield* b.repo.loadState(agentId("s")))).toBe(true)
        expect(yield* b.leased.runtime.invoke(agentId("s"), "increment", [])).toEqual([4])
        expect(Option.map(yield* b.repo.loadState(agentId("s")), (snap) => snap.invocationCount)).toEqual(
          Option.some(5)
        )
      }).pipe(Effect.scoped),
    60_000
  )
})
