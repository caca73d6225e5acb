/**
 * The lease table on a real `nats-server -js`: one owner per agent under
 * racing acquires from several connections, renewals, release, expiry.
 */
import { agentId } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { afterAll, beforeAll } from "vitest"
import { Leases } from "../src/index.js"
import { connection, names } from "./support/layers.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

let server: RunningNatsServer
beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(() => server?.dispose())

/** Lease tables of `hosts` (ids `host-0` …) over `connections` connections, one bucket. */
const tables = (bucket: string, hosts: number, connections: number, ttlMs = 10_000) =>
  Effect.gen(function* () {
    const conns = yield* Effect.forEach(
      Array.from({ length: connections }, (_, i) => i),
      (i) => Layer.build(connection(server.url, `lease-test-${i}`))
    )
    return yield* Effect.forEach(
      Array.from({ length: hosts }, (_, i) => i),
      (i) => Leases.make({ hostId: `host-${i}`, bucket, ttlMs }).pipe(Effect.provide(conns[i % connections]!))
    )
  })

describe("Leases", () => {
  it.effect(
    "100 hosts on 4 connections race to acquire one agent: exactly one wins, the others are told who",
    () =>
      Effect.gen(function* () {
        const leases = yield* tables(names().leases, 100, 4)
        const id = agentId("contested")
        const results = yield* Effect.forEach(leases, (l) => Effect.result(l.acquire(id)), { concurrency: "unbounded" })
        const winners = results.flatMap((r, i) => (r._tag === "Success" ? [`host-${i}`] : []))
        expect(winners.length).toBe(1)
        const winner = winners[0]!
        for (const r of results) {
          if (r._tag === "Failure") {
            expect(r.failure._tag).toBe("AgentAlreadyExists")
            expect(r.failure._tag === "AgentAlreadyExists" && r.failure.owner).toBe(winner)
            expect(r.failure._tag === "AgentAlreadyExists" && r.failure.agentId).toBe("contested")
          }
        }
        const owner = yield* leases[0]!.owner(id)
        expect(Option.map(owner, (o) => o.owner)).toEqual(Option.some(winner))
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "100 racing acquires after a release (a delete marker in the bucket): still exactly one wins",
    () =>
      Effect.gen(function* () {
        const leases = yield* tables(names().leases, 100, 4)
        const id = agentId("released-then-contested")
        yield* leases[7]!.acquire(id)
        yield* leases[7]!.release(id)
        expect(yield* leases[0]!.owner(id)).toEqual(Option.none())
        const results = yield* Effect.forEach(leases, (l) => Effect.result(l.acquire(id)), { concurrency: "unbounded" })
        expect(results.filter((r) => r._tag === "Success").length).toBe(1)
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "acquire again by the owner renews; renew, release, owner; another host's release leaves the lease alone",
    () =>
      Effect.gen(function* () {
        const [a, b] = yield* tables(names().leases, 2, 2)
        const id = agentId("a/b.c d")
        yield* a!.acquire(id)
        const first = Option.getOrThrow(yield* a!.owner(id))
        expect(first.owner).toBe("host-0")
        yield* a!.acquire(id)
        yield* a!.renew(id)
        const renewed = Option.getOrThrow(yield* b!.owner(id))
        expect(renewed.owner).toBe("host-0")
        expect(renewed.revision).toBeGreaterThan(first.revision)
        // b never held it: release is a no-op, renew is LeaseLost
        yield* b!.release(id)
        expect((yield* Effect.flip(b!.renew(id)))._tag).toBe("LeaseLost")
        expect(Option.getOrThrow(yield* b!.owner(id)).owner).toBe("host-0")
        const refused = yield* Effect.flip(b!.acquire(id))
        expect(refused).toMatchObject({ _tag: "AgentAlreadyExists", owner: "host-0" })
        yield* a!.release(id)
        expect(yield* b!.owner(id)).toEqual(Option.none())
        yield* b!.acquire(id)
        expect(Option.getOrThrow(yield* a!.owner(id)).owner).toBe("host-1")
      }).pipe(Effect.scoped)
  )

  it.live(
    "a lease not renewed expires after the TTL: another host takes the agent and the old owner's renew is LeaseLost",
    () =>
      Effect.gen(function* () {
        const [a, b] = yield* tables(names().leases, 2, 2, 1_000)
        const id = agentId("expiring")
        yield* a!.acquire(id)
        expect((yield* Effect.flip(b!.acquire(id)))._tag).toBe("AgentAlreadyExists")
        // poll until the server has dropped the expired lease (max_age 1 s)
        let taken = false
        for (let i = 0; i < 100 && !taken; i++) {
          yield* Effect.sleep("100 millis")
          taken = (yield* Effect.result(b!.acquire(id)))._tag === "Success"
        }
        expect(taken).toBe(true)
        const lost = yield* Effect.flip(a!.renew(id))
        expect(lost).toMatchObject({ _tag: "LeaseLost", owner: "host-1" })
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "hold keeps renewing past the TTL and releases when its scope closes",
    () =>
      Effect.gen(function* () {
        const [a, b] = yield* tables(names().leases, 2, 2, 1_000)
        const id = agentId("held")
        const scope = yield* Scope.make()
        yield* Scope.provide(a!.hold(id), scope)
        yield* Effect.sleep("2500 millis")
        expect(yield* Effect.flip(b!.acquire(id))).toMatchObject({ _tag: "AgentAlreadyExists", owner: "host-0" })
        yield* Scope.close(scope, Exit.void)
        yield* b!.acquire(id)
        expect(Option.getOrThrow(yield* a!.owner(id)).owner).toBe("host-1")
      }).pipe(Effect.scoped),
    30_000
  )
})
