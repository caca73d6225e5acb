import { describe, expect, it } from "@effect/vitest"
import { connect, createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll } from "vitest"
import { request, type RunningServer, startServer, upload } from "./support/InProcess.js"
import { type RunningNatsServer, startNatsServer } from "./support/NatsServer.js"

const MiB = 1024 * 1024
const encode = (body: unknown) => new TextEncoder().encode(JSON.stringify(body))
const decode = (msg: Msg) => ({
  body: JSON.parse(new TextDecoder().decode(msg.data)),
  code: msg.headers?.get("Nats-Service-Error-Code") || undefined,
  error: msg.headers?.get("Nats-Service-Error") || undefined
})

describe("NATS request/reply endpoints (real nats-server -js)", () => {
  let nats: RunningNatsServer
  let a: RunningServer
  let b: RunningServer
  let nc: NatsConnection
  let moduleId: string

  beforeAll(async () => {
    nats = await startNatsServer()
    a = await startServer({ natsUrl: nats.url, hostId: `a${process.pid}`, memoryBytes: 256 * MiB })
    b = await startServer({ natsUrl: nats.url, hostId: `b${process.pid}`, memoryBytes: 256 * MiB })
    nc = await connect({ servers: nats.url })
    // uploaded over HTTP to host a: the module lands in the shared Object Store
    const loaded = await request("POST", `${a.url}/modules`, upload("counter"))
    expect(loaded.status).toBe(201)
    moduleId = loaded.body.moduleId
  })
  afterAll(async () => {
    await nc?.close()
    await a?.stop()
    await b?.stop()
    await nats?.dispose()
  })

  const call = async (host: RunningServer, endpoint: string, body: unknown) =>
    decode(await nc.request(`${host.natsSubjectPrefix}.${endpoint}`, encode(body), { timeout: 10_000 }))

  it("answers the $SRV discovery subjects (PING, INFO, STATS)", async () => {
    const pings: Array<{ type: string; name: string; id: string }> = []
    const sub = nc.subscribe(createInbox())
    nc.publish("$SRV.PING.agent-runtime", new Uint8Array(), { reply: sub.getSubject() })
    for await (const msg of sub) {
      pings.push(JSON.parse(new TextDecoder().decode(msg.data)))
      if (pings.length === 2) break
    }
    expect(pings.map((p) => p.id).sort()).toEqual([a.hostId, b.hostId].sort())
    expect(pings[0]).toMatchObject({ type: "io.nats.micro.v1.ping_response", name: "agent-runtime" })

    const info = JSON.parse(new TextDecoder().decode((await nc.request(`$SRV.INFO.agent-runtime.${a.hostId}`)).data))
    expect(info).toMatchObject({ type: "io.nats.micro.v1.info_response", name: "agent-runtime", id: a.hostId })
    expect(info.endpoints.map((e: { name: string; subject: string }) => [e.name, e.subject])).toEqual(
      ["spawn", "evict", "invoke", "health"].map((n) => [n, `${a.natsSubjectPrefix}.${n}`])
    )
  })

  it("spawns, invokes, checks health and evicts over request/reply; counts them in STATS", async () => {
    const spawned = await call(a, "spawn", { agentId: "n1", moduleId, memoryLimit: 16 * MiB })
    expect(spawned).toMatchObject({ code: undefined, body: { agentId: "n1", moduleId, state: "Running" } })
    expect((await call(a, "invoke", { agentId: "n1", function: "add", args: [5] })).body).toEqual({ results: [5] })
    expect((await call(a, "invoke", { agentId: "n1", function: "increment" })).body).toEqual({ results: [6] })
    expect((await call(a, "health", { agentId: "n1" })).body).toMatchObject({ agentId: "n1" })
    expect((await call(a, "health", {})).body).toMatchObject({ hostId: a.hostId, agents: 1 })

    const missing = await call(a, "invoke", { agentId: "ghost", function: "add", args: [1] })
    expect(missing).toMatchObject({ code: "404", body: { _tag: "AgentNotFound", agentId: "ghost" } })
    expect(missing.error).toContain("ghost")
    const bad = await call(a, "invoke", { agentId: "n1" })
    expect(bad).toMatchObject({ code: "400", body: { _tag: "InvalidRequest", endpoint: "invoke" } })

    expect((await call(a, "evict", { agentId: "n1", reason: "Manual" })).body).toEqual({
      agentId: "n1",
      reason: "Manual"
    })
    expect((await call(a, "invoke", { agentId: "n1", function: "get" })).code).toBe("404")

    const stats = JSON.parse(new TextDecoder().decode((await nc.request(`$SRV.STATS.agent-runtime.${a.hostId}`)).data))
    expect(stats.type).toBe("io.nats.micro.v1.stats_response")
    const invoke = stats.endpoints.find((e: { name: string }) => e.name === "invoke")
    expect(invoke).toMatchObject({ num_requests: 5, num_errors: 3 })
    expect(invoke.processing_time).toBeGreaterThan(0)
    expect(invoke.last_error).toContain("AgentNotFound")
  })

  it("keeps one owner per agent across hosts: a second host gets AgentAlreadyExists with the owner", async () => {
    // host b never loaded the module: it comes from the shared Object Store, verified again
    expect((await call(b, "spawn", { agentId: "solo", moduleId, memoryLimit: 16 * MiB })).body).toMatchObject({
      agentId: "solo"
    })
    const second = await call(a, "spawn", { agentId: "solo", moduleId, memoryLimit: 16 * MiB })
    expect(second).toMatchObject({
      code: "409",
      body: { _tag: "AgentAlreadyExists", agentId: "solo", owner: b.hostId }
    })
    // the same over HTTP on host a
    const http = await request("POST", `${a.url}/agents`, { agentId: "solo", moduleId, memoryLimit: 16 * MiB })
    expect(http).toMatchObject({ status: 409, body: { _tag: "AgentAlreadyExists", owner: b.hostId } })
  })

  it("an invoke on another host activates a drained host's agent from its snapshot", async () => {
    const c = await startServer({ natsUrl: nats.url, hostId: `c${process.pid}`, memoryBytes: 128 * MiB })
    let stopped = false
    try {
      expect((await call(c, "spawn", { agentId: "mover", moduleId, memoryLimit: 16 * MiB })).body).toMatchObject({
        agentId: "mover"
      })
      expect((await call(c, "invoke", { agentId: "mover", function: "add", args: [7] })).body).toEqual({ results: [7] })
      // held by c: b answers with the owner
      const held = await call(b, "invoke", { agentId: "mover", function: "get" })
      expect(held).toMatchObject({ code: "409", body: { _tag: "AgentAlreadyExists", owner: c.hostId } })
      // c drains (saves the agent, releases its lease) and stops
      expect(await c.stop()).toBe(0)
      stopped = true
      const moved = await call(b, "invoke", { agentId: "mover", function: "add", args: [1] })
      expect(moved).toMatchObject({ code: undefined, body: { results: [8] } })
    } finally {
      if (!stopped) await c.stop()
    }
  })
})
