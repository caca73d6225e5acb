/**
 * Three runtime hosts as real processes (`support/host.ts`) on one real
 * `nats-server -js` (issue 14 items 2 and 3): modules, snapshots and events
 * shared through NATS, one owner per agent through leases (TTL 1.5 s).
 *
 * - migration: an agent migrated off host A continues on host B, with its
 *   state, at the next call through B;
 * - one owner under races: 100 activations of one agent spread over the 3
 *   hosts — exactly one wins, every other gets `AgentAlreadyExists` naming
 *   the winner;
 * - failover: host A is SIGKILLed with calls in flight (`snapshotAfterCalls`);
 *   after its leases expire its agents come back on B and C from their last
 *   snapshots, every acknowledged call's state is there (a counter's value is
 *   its acknowledged increments, plus at most the one call in flight at the
 *   kill), and every event a host saw acknowledged by JetStream reaches a
 *   durable consumer once (de-duplicated by `eventId`, and never stored twice).
 */
import type { EventId } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { afterAll, beforeAll } from "vitest"
import { Nats, NatsEventBus } from "../src/index.js"
import { startHost, stopHost, type HostProcess, type Reply } from "./support/Hosts.js"
import { connection, names } from "./support/layers.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

const TTL_MS = 1_500
let server: RunningNatsServer
let n: ReturnType<typeof names>
const hosts = new Map<string, HostProcess>()

beforeAll(async () => {
  server = await startNatsServer()
  n = names()
  const started = await Promise.all(
    ["host-a", "host-b", "host-c"].map((hostId) =>
      startHost({
        url: server.url,
        hostId,
        names: n,
        ttlMs: TTL_MS
      })
    )
  )
  for (const h of started) hosts.set(h.hostId, h)
}, 240_000)

afterAll(async () => {
  await Promise.all([...hosts.values()].map((h) => stopHost(h, 2_000)))
  await server?.dispose()
})

const host = (id: string) => hosts.get(id)!
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const okValue = (reply: Reply): unknown => {
  if (!reply.ok) throw new Error(`${reply.error._tag}: ${reply.error.message}`)
  return reply.value
}

/**
 * Calls `fn` on the agent through `via`, following it to its owner while its
 * lease is held elsewhere and retrying while the owner is dead (its lease
 * not yet expired); bounded by `withinMs`.
 */
const callAnywhere = async (
  via: string,
  agentId: string,
  fn: string,
  withinMs = 30_000
): Promise<{ value: unknown; host: string }> => {
  const deadline = Date.now() + withinMs
  let target = via
  for (;;) {
    const reply = await host(target).request("invoke", { agentId, fn })
    if (reply.ok) return { value: reply.value, host: target }
    if (Date.now() > deadline) throw new Error(`${agentId}: ${reply.error._tag} ${reply.error.message}`)
    const owner = reply.error.owner
    if (
      reply.error._tag === "AgentAlreadyExists" &&
      owner !== undefined &&
      hosts.get(owner)?.child.exitCode === null &&
      hosts.get(owner)?.child.signalCode === null
    ) {
      target = owner
    } else {
      target = via
      await sleep(100)
    }
  }
}

describe("several hosts on one nats-server", () => {
  it("migration: an agent migrated off host A is activated with its state by the next call through host B", async () => {
    const a = host("host-a")
    const b = host("host-b")
    okValue(await a.request("spawn", { agentId: "mig" }))
    for (let i = 1; i <= 3; i++)
      expect(okValue(await a.request("invoke", { agentId: "mig", fn: "increment" }))).toEqual([i])
    // while A holds it, B is refused and told where it lives
    const refused = await b.request("invoke", { agentId: "mig", fn: "get" })
    expect(refused).toMatchObject({ ok: false, error: { _tag: "AgentAlreadyExists", owner: "host-a" } })
    okValue(await a.request("migrate", { agentId: "mig" }))
    expect(okValue(await a.request("held"))).not.toContain("mig")
    expect(okValue(await b.request("invoke", { agentId: "mig", fn: "increment" }))).toEqual([4])
    expect(okValue(await b.request("held"))).toContain("mig")
    expect(await a.request("invoke", { agentId: "mig", fn: "get" })).toMatchObject({
      ok: false,
      error: { owner: "host-b" }
    })
  }, 60_000)

  it("one owner: 100 racing activations of one agent across the 3 hosts — exactly one wins, the others get AgentAlreadyExists with the owner", async () => {
    const a = host("host-a")
    okValue(await a.request("spawn", { agentId: "race" }))
    for (let i = 0; i < 5; i++) okValue(await a.request("invoke", { agentId: "race", fn: "increment" }))
    okValue(await a.request("migrate", { agentId: "race" }))
    const ids = ["host-a", "host-b", "host-c"]
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        host(ids[i % 3]!)
          .request("activate", { agentId: "race" })
          .then((r) => ({ via: ids[i % 3]!, r }))
      )
    )
    const wins = replies.filter(({ r }) => r.ok)
    expect(wins.length).toBe(1)
    const winner = wins[0]!.via
    for (const { r } of replies.filter(({ r }) => !r.ok)) {
      expect(r).toMatchObject({ ok: false, error: { _tag: "AgentAlreadyExists", owner: winner } })
    }
    // it lives on the winner only, with its state
    expect(okValue(await host(winner).request("invoke", { agentId: "race", fn: "get" }))).toEqual([5])
    for (const id of ids) {
      const held = okValue(await host(id).request("held")) as ReadonlyArray<string>
      expect(held.includes("race")).toBe(id === winner)
    }
  }, 60_000)

  it("failover: host A SIGKILLed mid-run — its agents come back on B and C from their last snapshots, no acknowledged call or event lost or duplicated", async () => {
    const a = host("host-a")
    const agents = Array.from({ length: 12 }, (_, i) => `f${i}`)
    for (const agentId of agents) okValue(await a.request("spawn", { agentId }))
    const acked = new Map(agents.map((id) => [id, 0]))
    const unacked = new Map(agents.map((id) => [id, 0]))
    let killed = false
    // each agent: increments through A, one at a time, until A is gone
    const loops = agents.map(async (agentId) => {
      while (!killed) {
        const reply = await a.request("invoke", { agentId, fn: "increment" })
        if (reply.ok) {
          expect(reply.value).toEqual([acked.get(agentId)! + 1])
          acked.set(agentId, acked.get(agentId)! + 1)
        } else {
          unacked.set(agentId, unacked.get(agentId)! + 1)
          expect(reply.error._tag).toBe("HostGone")
        }
      }
    })
    // mid-run: once every agent has some acknowledged calls
    const deadline = Date.now() + 60_000
    while ([...acked.values()].some((v) => v < 3) && Date.now() < deadline) await sleep(20)
    a.child.kill("SIGKILL")
    killed = true
    await a.exited
    const killedAt = Date.now()
    await Promise.all(loops)
    hosts.delete("host-a")

    // the next call through a survivor brings each agent back from its last snapshot (once the lease expired)
    const back = await Promise.all(
      agents.map((agentId, i) => callAnywhere(i % 2 === 0 ? "host-b" : "host-c", agentId, "get"))
    )
    const recoveredMs = Date.now() - killedAt
    agents.forEach((agentId, i) => {
      const [value] = back[i]!.value as [number]
      // every acknowledged call is there; at most the one call in flight at the kill went beyond
      expect(value).toBeGreaterThanOrEqual(acked.get(agentId)!)
      expect(value).toBeLessThanOrEqual(acked.get(agentId)! + unacked.get(agentId)!)
      expect(["host-b", "host-c"]).toContain(back[i]!.host)
    })
    expect(recoveredMs).toBeGreaterThanOrEqual(TTL_MS / 2) // not before the dead host's leases could expire
    // they stay put: a second call goes to the same host without another activation
    const again = await callAnywhere("host-b", "f0", "increment")
    expect(again.host).toBe(back[0]!.host)

    // every event the hosts saw acknowledged by JetStream (A's included) reaches a durable consumer once
    const seen = await Effect.runPromise(consumeAll())
    const acknowledged = [...host("host-b").events, ...host("host-c").events, ...a.events]
    expect(a.events.length).toBeGreaterThan(agents.length) // A's spawns at least
    expect(seen.delivered).toBeGreaterThan(0)
    expect(acknowledged.filter((id) => !seen.distinct.has(id))).toEqual([])
    expect(seen.delivered).toBe(seen.distinct.size) // no event stored (so delivered) twice
  }, 180_000)
})

/** Reads the whole event stream through a durable consumer (acking each), de-duplicating by `eventId`. */
const consumeAll = () =>
  Effect.gen(function* () {
    const nats = yield* Nats.Nats
    const bus = yield* NatsEventBus.NatsEventBus
    const info = yield* Effect.promise(() => nats.manager.streams.info(n.stream))
    const stored = info.state.messages
    const deliveries = yield* bus.consume({
      durable: "failover-check",
      deliver: "all",
      filterSubject: `${n.subjectPrefix}.>`
    })
    const distinct = new Set<EventId>()
    let count = 0
    yield* Stream.runForEach(Stream.take(deliveries, stored), (d) =>
      Effect.gen(function* () {
        count++
        distinct.add(d.event.eventId)
        yield* d.ack
      })
    )
    return { delivered: count, distinct: distinct as Set<string> }
  }).pipe(
    Effect.scoped,
    Effect.provide(
      NatsEventBus.layer({ runtimeId: "observer", stream: n.stream, subjectPrefix: n.subjectPrefix }).pipe(
        Layer.provideMerge(connection(server.url, "observer"))
      )
    ),
    Effect.timeout("60 seconds")
  )
