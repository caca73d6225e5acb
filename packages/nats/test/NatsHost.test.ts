/**
 * `NatsHost`: the names of a deployment, and two hosts built from
 * `NatsHost.layer` alone (plus a runtime and `LeasedRuntime`) on one real
 * `nats-server -js` sharing modules, snapshots, events and leases.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  AgentRuntimes,
  agentId,
  ExecutionAuthorizers,
  makeMetadata,
  MemoryBudget,
  MetricsRepositories,
  ModuleRepository
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { afterAll, beforeAll } from "vitest"
import { LeasedRuntime, Leases, Nats, NatsEventBus, NatsHost } from "../src/index.js"
import { uniqueName } from "./support/NatsServer.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

let server: RunningNatsServer
beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(() => server?.dispose())

/** A host on `names`: every shared port from `NatsHost.layer`, a native-engine runtime, leases guarding it. */
const host = (names: NatsHost.Names, hostId: string) =>
  Effect.gen(function* () {
    const ports = NatsHost.layer({ servers: server.url, hostId, names, ttlMs: 10_000, connectTimeoutMs: 5_000 })
    const runtime = AgentRuntimes.layer({ id: hostId, persistence: { snapshotAfterCalls: true } }).pipe(
      Layer.provideMerge(Layer.mergeAll(ports, MetricsRepositories.layerMemory, ExecutionAuthorizers.layerAllowAll)),
      Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
    )
    const ctx = yield* Layer.build(LeasedRuntime.layer.pipe(Layer.provideMerge(runtime)))
    return {
      leased: Context.get(ctx, LeasedRuntime.LeasedRuntime),
      leases: Context.get(ctx, Leases.Leases),
      nats: Context.get(ctx, Nats.Nats),
      bus: Context.get(ctx, NatsEventBus.NatsEventBus),
      modules: Context.get(ctx, ModuleRepository)
    }
  })

describe("NatsHost", () => {
  it("names: one prefix gives every bucket, store, stream and subject; characters NATS refuses become _", () => {
    expect(NatsHost.names("prod")).toEqual({
      modules: "prod-modules",
      instances: "prod-instances",
      snapshots: "prod-snapshots",
      leases: "prod-leases",
      stream: "prod_EVENTS",
      subjectPrefix: "prod"
    })
    const odd = NatsHost.names("eu.west 1/*>")
    expect(odd.stream).toBe("eu_west_1____EVENTS")
    expect(odd.subjectPrefix).toBe("eu_west_1___")
    for (const name of Object.values(odd)) expect(name).toMatch(/^[A-Za-z0-9_-]+$/)
  })

  it.live(
    "two hosts on one set of names share modules, snapshots, events and leases",
    () =>
      Effect.gen(function* () {
        const names = NatsHost.names(uniqueName("host"))
        const a = yield* host(names, "host-a")
        const b = yield* host(names, "host-b")
        expect(a.nats.connection.info?.server_id).toBeDefined()

        // the module loaded on A is in the shared Object Store: B's repository lists it before B loads it
        const meta = makeMetadata({ name: "counter", version: "1.0.0" })
        const moduleId = yield* a.leased.runtime.loadModule(readAgent("counter"), meta)
        expect((yield* b.modules.list).map((m) => m.id)).toContain(moduleId)
        expect(yield* b.leased.runtime.loadModule(readAgent("counter"), meta)).toBe(moduleId)
        const x = agentId("x")
        yield* a.leased.spawnAgent(x, moduleId, { memoryLimit: 2 * MemoryBudget.MiB })
        expect(yield* a.leased.runtime.invoke(x, "increment", [])).toEqual([1])
        expect(yield* a.leased.runtime.invoke(x, "increment", [])).toEqual([2])
        // the lease is A's: B is refused with the owner
        const refused = yield* Effect.flip(b.leased.spawnAgent(x, moduleId, { memoryLimit: 2 * MemoryBudget.MiB }))
        expect(refused).toMatchObject({ _tag: "AgentAlreadyExists", owner: "host-a" })

        // A hands the agent over (state saved in the shared KV, lease released); B activates it where A left it
        const events = yield* a.leased.runtime.events // subscribed from here on
        const evicted = yield* Effect.forkScoped(
          Stream.runHead(Stream.filter(events, (e) => e._tag === "AgentEvicted" && e.agentId === x))
        )
        yield* a.leased.migrate(x)
        expect(Option.map(yield* Fiber.join(evicted), (e) => "reason" in e && e.reason)).toEqual(
          Option.some("Migration")
        )
        expect(yield* b.leases.owner(x)).toEqual(Option.none())
        yield* b.leased.activate(x)
        expect(yield* b.leased.runtime.invoke(x, "increment", [])).toEqual([3])
        expect(Option.map(yield* a.leases.owner(x), (o) => o.owner)).toEqual(Option.some("host-b"))

        // both hosts publish on the one stream, under the deployment's subject prefix
        const deliveries = yield* a.bus.consume({
          durable: "natshost-test",
          deliver: "all",
          filterSubject: `${names.subjectPrefix}.>`
        })
        const seen = yield* Stream.runCollect(
          Stream.take(
            Stream.mapEffect(deliveries, (d) => Effect.as(d.ack, d)),
            4
          )
        )
        const subjects = [...seen].map((d) => d.subject)
        expect(subjects.some((s) => s.startsWith(`${names.subjectPrefix}.host-a.`))).toBe(true)
        const info = yield* Effect.promise(() => a.nats.manager.streams.info(names.stream))
        const fromB = yield* Effect.promise(() =>
          a.nats.manager.streams.getMessage(names.stream, { last_by_subj: `${names.subjectPrefix}.host-b.>` })
        ).pipe(Effect.option)
        expect(info.state.messages).toBeGreaterThan(4)
        expect(Option.isSome(fromB)).toBe(true)
      }).pipe(Effect.scoped),
    60_000
  )
})
