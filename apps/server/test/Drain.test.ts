import { describe, expect, it } from "@effect/vitest"
import { request, upload } from "./support/InProcess.js"
import { startServerProcess } from "./support/ServerProcess.js"

describe("graceful shutdown (child process)", () => {
  it("SIGTERM while a call is in flight: the call completes and the process exits 0", async () => {
    // the node engine runs calls on worker threads, so the server's event loop stays free during the call
    const server = await startServerProcess([
      "--port",
      "0",
      "--trust",
      "test-only",
      "--engine",
      "node",
      "--memory",
      "256MiB"
    ])
    try {
      const loaded = await request("POST", `${server.url}/modules`, upload("looper"))
      expect(loaded.status).toBe(201)
      const spawned = await request("POST", `${server.url}/agents`, {
        agentId: "busy",
        moduleId: loaded.body.moduleId,
        memoryLimit: 1024 * 1024,
        timeoutMs: 120_000
      })
      expect(spawned.status).toBe(201)

      const n = 1_500_000_000
      const call = request("POST", `${server.url}/agents/busy/invoke`, { function: "spin_n", args: [n] })
      // wait until the server counts the call in flight (not a fixed sleep)
      for (;;) {
        const health = await request("GET", `${server.url}/health`)
        if (health.body.inFlight >= 1) break
        await new Promise((r) => setTimeout(r, 20))
      }
      server.child.kill("SIGTERM")
      const result = await call
      expect(result).toEqual({ status: 200, body: { results: [n] } })
      expect(await server.exited).toEqual({ code: 0, signal: null })
      // the drain saw the call in flight and waited for it
      expect(server.stderr()).toMatch(/draining host \S+: 1 call\(s\) in flight/)
      expect(server.stdout()).toContain(`{"event":"stopped","inFlight":0}`)
    } finally {
      server.child.kill("SIGKILL")
    }
  }, 180_000)
})
