/**
 * The edge Worker in real workerd (127.0.0.1, a free port): HTTP routes,
 * status codes for bad input, fuel as the CPU limit while other requests
 * are answered, server-sent events, and a bundle that fails its checks.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { app, build, startWorkerd, type Workerd } from "./support/workerd.js"

let workerd: Workerd

beforeAll(async () => {
  build("worker")
  workerd = await startWorkerd("worker")
}, 60_000)

afterAll(async () => {
  await workerd?.stop()
})

const call = async (method: string, path: string, body?: unknown, raw?: string) => {
  const init: RequestInit = { method }
  if (raw !== undefined) init.body = raw
  else if (body !== undefined) init.body = JSON.stringify(body)
  const response = await fetch(workerd.url + path, init)
  const text = await response.text()
  let json: any
  try {
    json = text === "" ? undefined : JSON.parse(text)
  } catch {
    json = text
  }
  return { status: response.status, json }
}

describe("edge Worker routes (workerd)", () => {
  it("GET / lists the bundle's agent types on platform Edge", async () => {
    const r = await call("GET", "/")
    expect(r.status).toBe(200)
    expect(r.json.runtime.platform).toBe("Edge")
    expect(r.json.agentTypes.map((a: { type: string }) => a.type)).toEqual([
      "counter",
      "looper",
      "text",
      "trapper",
      "multi"
    ])
  })

  it("spawn, invoke (i64 as decimal strings), health, delete", async () => {
    const spawned = await call("POST", "/agents/c1", { type: "counter" })
    expect(spawned.status).toBe(201)
    expect(spawned.json.agent).toMatchObject({ agentId: "c1", state: "Running", budget: { limit: 1_048_576 } })
    expect((await call("POST", "/agents/c1/invoke/add", [40])).json).toEqual({ results: [40] })
    expect((await call("POST", "/agents/c1/invoke/increment", [])).json).toEqual({ results: [41] })
    // i64 beyond 2^53 survives both ways as a decimal string
    expect((await call("POST", "/agents/c1/invoke/add_i64", ["9007199254740993", "1"])).json).toEqual({
      results: ["9007199254740994"]
    })
    const health = await call("GET", "/agents/c1/health")
    expect(health.status).toBe(200)
    expect(health.json.agent.invocationCount).toBe(3)
    expect((await call("DELETE", "/agents/c1")).status).toBe(204)
    expect((await call("GET", "/agents/c1/health")).status).toBe(404)
  })

  it("multi-value and floats: NaN travels as a string", async () => {
    expect((await call("POST", "/agents/m1", { type: "multi" })).status).toBe(201)
    expect((await call("POST", "/agents/m1/invoke/swap", [7, "-5"])).json).toEqual({ results: ["-5", 7] })
    expect((await call("POST", "/agents/m1/invoke/sqrt_f64", [-1])).json).toEqual({ results: ["NaN"] })
    expect((await call("POST", "/agents/m1/invoke/mul_f64", ["Infinity", 2])).json).toEqual({ results: ["Infinity"] })
  })

  it("a second memory budget bundled for counter (2 MiB) spawns; one that is not bundled is 422 [edge:no-variant]", async () => {
    expect((await call("POST", "/agents/c2", { type: "counter", memoryLimit: 2_097_152 })).status).toBe(201)
    const r = await call("POST", "/agents/c3", { type: "counter", memoryLimit: 3_145_728 })
    expect(r.status).toBe(422)
    expect(r.json.error._tag).toBe("InstantiationError")
    expect(r.json.error.message).toMatch(/\[edge:no-variant\].*cap=16\|fuel=-\|state/)
  })

  it("bad input gets the documented status codes", async () => {
    await call("POST", "/agents/dup", { type: "counter" })
    const cases: Array<[string, string, unknown, string | undefined, number, string]> = [
      ["POST", "/agents/x", undefined, "{not json", 400, "BadRequest"],
      ["POST", "/agents/x", undefined, "", 400, "BadRequest"],
      ["POST", "/agents/x", [1], undefined, 400, "BadRequest"],
      ["POST", "/agents/x", { type: 5 }, undefined, 400, "BadRequest"],
      ["POST", "/agents/x", { type: "counter", memoryLimit: 1000 }, undefined, 400, "InvalidConfig"],
      ["POST", "/agents/x", { type: "nope" }, undefined, 404, "UnknownAgentType"],
      ["POST", "/agents/dup", { type: "counter" }, undefined, 409, "AgentAlreadyExists"],
      ["POST", "/agents/dup/invoke/add", { n: 1 }, undefined, 400, "BadRequest"],
      ["POST", "/agents/dup/invoke/add", ["one"], undefined, 400, "BadRequest"],
      ["POST", "/agents/dup/invoke/add", [1, 2], undefined, 400, "SignatureMismatch"],
      ["POST", "/agents/dup/invoke/add_i64", ["1.5", "2"], undefined, 400, "BadRequest"],
      ["POST", "/agents/dup/invoke/nothing", [], undefined, 404, "FunctionNotFound"],
      ["POST", "/agents/ghost/invoke/add", [1], undefined, 404, "AgentNotFound"],
      ["DELETE", "/agents/ghost", undefined, undefined, 404, "AgentNotFound"],
      ["GET", "/agents/ghost/health", undefined, undefined, 404, "AgentNotFound"],
      ["GET", "/agents/dup", undefined, undefined, 405, "MethodNotAllowed"],
      ["GET", "/nowhere", undefined, undefined, 404, "NotFound"],
      ["PUT", "/agents/dup/invoke/add", [1], undefined, 405, "MethodNotAllowed"],
      ["POST", "/events", [], undefined, 405, "MethodNotAllowed"],
      ["GET", "/agents/dup/invoke", undefined, undefined, 404, "NotFound"],
      ["GET", "/agents//ghost/health/", undefined, undefined, 404, "AgentNotFound"], // empty segments are ignored
      [
        "POST",
        "/agents/big",
        undefined,
        JSON.stringify({ type: "counter", pad: "x".repeat(1_100_000) }),
        413,
        "PayloadTooLarge"
      ]
    ]
    for (const [method, path, body, raw, status, tag] of cases) {
      const r = await call(method, path, body, raw)
      expect({ method, path, status: r.status, tag: r.json?.error?._tag }).toEqual({ method, path, status, tag })
    }
    expect((await call("DELETE", "/")).json.error.message).toBe("DELETE is not allowed on / (allowed: GET)")
  })

  it("a trap is 422 Trap, and the agent keeps working", async () => {
    await call("POST", "/agents/t1", { type: "trapper" })
    const r = await call("POST", "/agents/t1/invoke/divide", [1, 0])
    expect(r.status).toBe(422)
    expect(r.json.error).toMatchObject({ _tag: "Trap", function: "divide" })
    expect(r.json.error.reason).toMatch(/divide by zero/)
    expect((await call("POST", "/agents/t1/invoke/ok", [])).json).toEqual({ results: [42] })
  })

  it("looper.spin stops with FuelExhausted (422) while requests sent during the loop are answered", async () => {
    // the bundle gives the looper 2·10⁹ fuel: ≈ 0.3 s of `spin` (2·10⁸ ran out in ≈ 35 ms, racing the 30 ms pause below)
    expect((await call("POST", "/agents/spinner", { type: "looper" })).status).toBe(201)
    expect((await call("POST", "/agents/bystander", { type: "counter" })).status).toBe(201)
    const started = performance.now()
    const spin = call("POST", "/agents/spinner/invoke/spin", []).then((r) => ({ ...r, at: performance.now() }))
    await new Promise((r) => setTimeout(r, 30))
    const sentAt = performance.now()
    const others = await Promise.all([
      call("POST", "/agents/bystander/invoke/add", [5]),
      call("GET", "/agents/bystander/health"),
      call("GET", "/"),
      call("POST", "/agents/late", { type: "counter" })
    ])
    const spun = await spin
    expect(spun.status).toBe(422)
    expect(spun.json.error).toMatchObject({ _tag: "FuelExhausted", function: "spin", fuel: 2_000_000_000 })
    expect(sentAt).toBeLessThan(spun.at) // the other requests went out while the loop was running
    expect(others.map((o) => o.status)).toEqual([200, 200, 200, 201])
    expect(others[0]!.json).toEqual({ results: [5] })
    expect(spun.at - started).toBeLessThan(20_000) // fuel, not a timer, ended it
    // the agent that ran out of fuel is still usable, with fresh fuel per call
    expect((await call("POST", "/agents/spinner/invoke/spin_n", [1000])).json).toEqual({ results: [1000] })
  })

  it("GET /events streams runtime events as server-sent events", async () => {
    const response = await fetch(`${workerd.url}/events?limit=2`)
    expect(response.headers.get("content-type")).toBe("text/event-stream")
    const text = response.text()
    await new Promise((r) => setTimeout(r, 50))
    await call("POST", "/agents/ev", { type: "text" })
    const body = await text
    const events = body
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)))
    expect(events.map((e) => e._tag)).toEqual(["ModuleLoaded", "AgentSpawned"])
    expect(events[1]).toMatchObject({ agentId: "ev", memoryAllocated: 16 * 1_048_576 })
  })
})

describe("a bundle that does not match its manifest (workerd)", () => {
  it("a swapped .wasm fails the start-up check: every route answers 503 BundleMismatch, nothing crashes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edge-worker-tampered-"))
    try {
      cpSync(join(app, "dist", "worker"), dir, { recursive: true })
      const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"))
      const counter = manifest.modules.find((m: { name: string }) => m.name === "counter").variants[0].file
      const looper = manifest.modules.find((m: { name: string }) => m.name === "looper").variants[0].file
      writeFileSync(join(dir, counter), readFileSync(join(dir, looper)))
      const broken = await startWorkerd(dir, "/", () => true)
      try {
        for (const [method, path] of [
          ["GET", "/"],
          ["POST", "/agents/a"]
        ] as const) {
          const r = await fetch(broken.url + path, { method, body: method === "POST" ? "{}" : null })
          expect(r.status).toBe(503)
          const json = (await r.json()) as { error: { _tag: string; file: string } }
          expect(json.error).toMatchObject({ _tag: "BundleMismatch", file: counter })
        }
      } finally {
        await broken.stop()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
