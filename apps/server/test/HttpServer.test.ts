import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import parsePrometheusTextFormat from "parse-prometheus-text-format"
import { afterAll, beforeAll } from "vitest"
import { request, type RunningServer, startServer, upload } from "./support/InProcess.js"

const MiB = 1024 * 1024

describe("HTTP API (embedded, real HTTP)", () => {
  let server: RunningServer
  let moduleId: string
  beforeAll(async () => {
    server = await startServer({ memoryBytes: 128 * MiB })
    const loaded = await request("POST", `${server.url}/modules`, upload("counter"))
    expect(loaded.status).toBe(201)
    moduleId = loaded.body.moduleId
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("lists the loaded module", async () => {
    const { status, body } = await request("GET", `${server.url}/modules`)
    expect(status).toBe(200)
    expect(body).toContainEqual(expect.objectContaining({ moduleId, name: "counter", version: "1.0.0" }))
  })

  it("spawns, invokes, reports health, evicts", async () => {
    const spawned = await request("POST", `${server.url}/agents`, { agentId: "c1", moduleId, memoryLimit: 16 * MiB })
    expect(spawned.status).toBe(201)
    expect(spawned.body).toMatchObject({ agentId: "c1", moduleId, state: "Running", memoryLimit: 16 * MiB })

    expect((await request("POST", `${server.url}/agents/c1/invoke`, { function: "add", args: [41] })).body).toEqual({
      results: [41]
    })
    expect((await request("POST", `${server.url}/agents/c1/invoke`, { function: "increment" })).body).toEqual({
      results: [42]
    })
    // i64 travels as a decimal string both ways
    const wide = await request("POST", `${server.url}/agents/c1/invoke`, {
      function: "add_i64",
      args: ["9007199254740993", "1"]
    })
    expect(wide).toEqual({ status: 200, body: { results: ["9007199254740994"] } })

    const agents = await request("GET", `${server.url}/agents`)
    expect(agents.body.map((a: { agentId: string }) => a.agentId)).toContain("c1")
    expect((await request("GET", `${server.url}/agents/c1`)).body).toMatchObject({ agentId: "c1", invocationCount: 3 })

    const health = await request("GET", `${server.url}/agents/c1/health`)
    expect(health.status).toBe(200)
    expect(health.body).toMatchObject({ agentId: "c1", status: expect.any(String) })
    const runtime = await request("GET", `${server.url}/health`)
    expect(runtime.body).toMatchObject({ hostId: server.hostId, draining: false, inFlight: 0 })
    expect(runtime.body.checks.map((c: { agentId: string }) => c.agentId)).toContain("c1")

    expect(await request("DELETE", `${server.url}/agents/c1?reason=Manual`)).toEqual({
      status: 200,
      body: { agentId: "c1", reason: "Manual" }
    })
    expect((await request("GET", `${server.url}/agents/c1`)).status).toBe(404)

    await request("POST", `${server.url}/agents`, { agentId: "c1b", moduleId, memoryLimit: 16 * MiB })
    expect((await request("POST", `${server.url}/agents/c1b/evict`, { reason: "Manual" })).status).toBe(200)
  })

  it("maps typed errors to status codes with JSON bodies", async () => {
    await request("POST", `${server.url}/agents`, { agentId: "e1", moduleId, memoryLimit: 16 * MiB })
    const cases: ReadonlyArray<[string, string, unknown, number, Record<string, unknown>]> = [
      [
        "POST",
        "/agents/nobody/invoke",
        { function: "add", args: [1] },
        404,
        { _tag: "AgentNotFound", agentId: "nobody" }
      ],
      [
        "POST",
        "/agents",
        { agentId: "x", moduleId: "missing@1#00", memoryLimit: 16 * MiB },
        404,
        { _tag: "ModuleNotFound" }
      ],
      [
        "POST",
        "/agents",
        { agentId: "e1", moduleId, memoryLimit: 16 * MiB },
        409,
        { _tag: "AgentAlreadyExists", agentId: "e1", owner: server.hostId }
      ],
      ["POST", "/agents", { agentId: "tiny", moduleId, memoryLimit: 1024 }, 400, { _tag: "InvalidConfig" }],
      ["POST", "/agents/e1/invoke", { function: "nope" }, 404, { _tag: "FunctionNotFound", function: "nope" }],
      ["POST", "/agents/e1/invoke", { function: "add", args: [] }, 400, { _tag: "SignatureMismatch", function: "add" }],
      [
        "POST",
        "/agents/e1/invoke",
        { function: "add", args: ["x"] },
        400,
        { _tag: "InvalidRequest", endpoint: "invoke" }
      ],
      ["POST", "/agents", { agentId: "big", moduleId, memoryLimit: 256 * MiB }, 503, { _tag: "InsufficientMemory" }],
      ["POST", "/modules", { ...upload("counter"), name: "impostor" }, 422, { _tag: "InvalidSignature" }],
      ["DELETE", "/agents/nobody", undefined, 404, { _tag: "AgentNotFound" }]
    ]
    for (const [method, path, body, status, error] of cases) {
      const response = await request(method, `${server.url}${path}`, body)
      expect({ path, status: response.status, body: response.body }).toEqual({
        path,
        status,
        body: expect.objectContaining(error)
      })
    }
    // a body or query that does not decode: 400 with an InvalidRequest body naming the part
    const undecodable = await request("POST", `${server.url}/agents`, { agentId: 7 })
    expect(undecodable).toMatchObject({ status: 400, body: { _tag: "InvalidRequest", endpoint: "Payload" } })
    const badReason = await request("DELETE", `${server.url}/agents/e1?reason=Whim`)
    expect(badReason).toMatchObject({ status: 400, body: { _tag: "InvalidRequest", endpoint: "Query" } })
  })

  it("streams runtime events as Server-Sent Events", async () => {
    const controller = new AbortController()
    // the response starts with its first event, and the subscription is taken when it starts:
    // spawn agents until one's AgentSpawned arrives (no fixed sleep)
    const spawnedIds: Array<string> = []
    const spawner = setInterval(() => {
      const agentId = `sse-${spawnedIds.length + 1}`
      spawnedIds.push(agentId)
      void request("POST", `${server.url}/agents`, { agentId, moduleId, memoryLimit: MiB })
    }, 200)
    try {
      const response = await fetch(`${server.url}/events`, { signal: controller.signal })
      expect(response.status).toBe(200)
      expect(response.headers.get("content-type")).toContain("text/event-stream")
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
      let text = ""
      const events: Array<{ _tag: string; agentId?: string; moduleId?: string }> = []
      while (!events.some((e) => e._tag === "AgentSpawned")) {
        const { value, done } = await reader.read()
        if (done) break
        text += value
        const blocks = text.split("\n\n")
        text = blocks.pop()!
        for (const block of blocks) {
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim())
            .join("\n")
          if (data !== "") events.push(JSON.parse(data))
        }
      }
      const spawned = events.find((e) => e._tag === "AgentSpawned")
      expect(spawned).toMatchObject({ _tag: "AgentSpawned", moduleId, runtimeId: server.hostId })
      expect(spawnedIds).toContain(spawned!.agentId)
    } finally {
      clearInterval(spawner)
      controller.abort()
    }
  })

  it("serves /metrics in the Prometheus text format", async () => {
    await request("POST", `${server.url}/agents`, { agentId: "m1", moduleId, memoryLimit: 16 * MiB })
    await request("POST", `${server.url}/agents/m1/invoke`, { function: "increment" })
    await request("POST", `${server.url}/agents/m1/invoke`, { function: "missing" })
    const response = await fetch(`${server.url}/metrics`)
    expect(response.headers.get("content-type")).toContain("text/plain")
    const families = parsePrometheusTextFormat(await response.text())
    const family = (name: string) => {
      const f = families.find((x) => x.name === name)
      expect(f, name).toBeDefined()
      return f!
    }
    const running = family("agent_runtime_agents").metrics.find((m) => m.labels?.["state"] === "Running")
    expect(Number(running?.value)).toBeGreaterThanOrEqual(1)
    expect(family("agent_runtime_agents").type).toBe("GAUGE")
    expect(Number(family("agent_runtime_memory_reserved_bytes").metrics[0]!.value)).toBeGreaterThanOrEqual(16 * MiB)
    expect(family("agent_runtime_memory_used_bytes").type).toBe("GAUGE")
    expect(Number(family("agent_runtime_memory_total_bytes").metrics[0]!.value)).toBe(128 * MiB)
    expect(family("agent_runtime_pressure_level").metrics[0]!.value).toBe("0")
    expect(Number(family("agent_runtime_invocations_total").metrics[0]!.value)).toBeGreaterThanOrEqual(2)
    const notFound = family("agent_runtime_errors_total").metrics.find((m) => m.labels?.["tag"] === "FunctionNotFound")
    expect(Number(notFound?.value)).toBeGreaterThanOrEqual(1)
    const latency = family("agent_runtime_call_latency_ms")
    expect(latency.type).toBe("HISTOGRAM")
    expect(Number(latency.metrics[0]!.count)).toBeGreaterThanOrEqual(2)
  })

  it("answers /healthz and publishes the OpenAPI document", async () => {
    expect(await request("GET", `${server.url}/healthz`)).toEqual({
      status: 200,
      body: { status: "ok", hostId: server.hostId }
    })
    const { body } = await request("GET", `${server.url}/openapi.json`)
    expect(body.openapi).toMatch(/^3\./)
    expect(Object.keys(body.paths)).toEqual(
      expect.arrayContaining([
        "/agents",
        "/agents/{agentId}",
        "/agents/{agentId}/evict",
        "/agents/{agentId}/invoke",
        "/agents/{agentId}/health",
        "/modules",
        "/health",
        "/healthz",
        "/metrics",
        "/events"
      ])
    )
    expect(Object.keys(body.paths["/agents/{agentId}"])).toEqual(expect.arrayContaining(["get", "delete"]))
    expect(Object.keys(body.paths["/agents/{agentId}/invoke"].post.responses)).toEqual(
      expect.arrayContaining(["200", "404", "409", "504"])
    )
  })
})

describe("HTTP API (embedded on SQLite, --db)", () => {
  it("keeps uploaded modules in the database across restarts", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agent-runtime-server-db-"))
    const db = path.join(dir, "host.sqlite")
    try {
      const first = await startServer({ db, memoryBytes: 64 * MiB })
      let moduleId: string
      try {
        const loaded = await request("POST", `${first.url}/modules`, upload("counter"))
        expect(loaded.status).toBe(201)
        moduleId = loaded.body.moduleId
        await request("POST", `${first.url}/agents`, { agentId: "d1", moduleId, memoryLimit: 16 * MiB })
        expect((await request("POST", `${first.url}/agents/d1/invoke`, { function: "add", args: [3] })).body).toEqual({
          results: [3]
        })
      } finally {
        await first.stop()
      }
      const second = await startServer({ db, memoryBytes: 64 * MiB })
      try {
        expect((await request("GET", `${second.url}/modules`)).body).toContainEqual(
          expect.objectContaining({ moduleId, name: "counter" })
        )
        // the module comes from the database (verified again) for a spawn on the new process
        const spawned = await request("POST", `${second.url}/agents`, {
          agentId: "d2",
          moduleId,
          memoryLimit: 16 * MiB
        })
        expect(spawned.status).toBe(201)
      } finally {
        await second.stop()
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
