/**
 * Suite `server` (issue 14, "Done when"): `invoke` through `apps/server`
 * — over HTTP (`POST /agents/:id/invoke`, keep-alive `fetch`) and over NATS
 * request/reply (the `invoke` endpoint) — against a raw NATS request/reply
 * round trip (a responder that echoes the payload, same connection, same
 * nats-server) measured in the same run, as ratios. The server runs in this
 * process on a real `nats-server -js` started on a free port (Debian's
 * `nats-server`; `$NATS_SERVER` overrides the binary) with the native
 * engine; the agent is the signed `counter` fixture, the call `increment`.
 * Without `nats-server` the suite reports nothing and says why in a note.
 *
 * @since 0.1.0
 */
import { manifestEntry, readAgent } from "@agent-runtime/agents"
import { Server, ServerConfig } from "@agent-runtime/server"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as References from "effect/References"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { measure, type Row, type RunOptions, size, type SuiteResult } from "./Measure.js"

const SUITE = "server"

const NATS_BINARY =
  process.env["NATS_SERVER"] ??
  (spawnSync("nats-server", ["--version"]).error === undefined || !fs.existsSync("/usr/sbin/nats-server")
    ? "nats-server"
    : "/usr/sbin/nats-server")

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

/** A `nats-server -js` on a free port with a temporary store; killed (store removed) by `dispose` and at process exit. */
const startNats = async (): Promise<{ url: string; dispose: () => Promise<void> }> => {
  const port = await freePort()
  const store = fs.mkdtempSync(path.join(os.tmpdir(), "agent-runtime-bench-nats-"))
  const child: ChildProcess = spawn(NATS_BINARY, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", store], {
    stdio: "ignore"
  })
  const kill = () => child.kill("SIGKILL")
  process.once("exit", kill)
  let exited = false
  child.once("exit", () => (exited = true))
  const deadline = Date.now() + 20_000
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      kill()
      throw new Error(`nats-server did not start on port ${port}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    dispose: async () => {
      process.off("exit", kill)
      if (!exited) {
        const gone = new Promise<void>((r) => child.once("exit", () => r()))
        child.kill("SIGTERM")
        await gone
      }
      fs.rmSync(store, { recursive: true, force: true })
    }
  }
}

export const serverSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const notes: Array<string> = []
  const probe = spawnSync(NATS_BINARY, ["--version"])
  if (probe.error !== undefined || probe.status !== 0) {
    notes.push(
      `nats-server not found (${NATS_BINARY}); install it (apt-get install -y nats-server) to measure the server suite`
    )
    return { suite: SUITE, rows, notes }
  }
  const batch = size(options, 200, 50, 2)
  const nats = await startNats()
  const stop = Deferred.makeUnsafe<void>()
  let nc: NatsConnection | undefined
  let fiber: Fiber.Fiber<number, unknown> | undefined
  try {
    const config = {
      ...ServerConfig.parse(["--port", "0", "--trust", "test-only"], {}),
      natsUrl: nats.url,
      hostId: `bench-${process.pid}`
    }
    const started = new Promise<Server.Started>((resolve, reject) => {
      fiber = Effect.runFork(
        Server.serve(config, Deferred.await(stop), (s) => Effect.sync(() => resolve(s))).pipe(
          Effect.provideService(References.MinimumLogLevel, "Error")
        )
      )
      fiber.addObserver((exit) => Exit.isFailure(exit) && reject(new Error(`server failed: ${String(exit.cause)}`)))
    })
    const server = await started
    nc = await connect({ servers: nats.url, name: "bench" })
    const json = async (method: string, url: string, body: unknown) => {
      const response = await fetch(url, {
        method,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body)
      })
      const parsed = (await response.json()) as Record<string, unknown>
      if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${JSON.stringify(parsed)}`)
      return parsed
    }
    const entry = manifestEntry("counter")
    const loaded = await json("POST", `${server.url}/modules`, {
      name: entry.name,
      version: entry.version,
      wasm: Buffer.from(readAgent("counter")).toString("base64")
    })
    await json("POST", `${server.url}/agents`, {
      agentId: "bench-1",
      moduleId: loaded["moduleId"],
      memoryLimit: 16 * 1024 * 1024
    })

    const echo = nc.subscribe("bench.echo", {
      callback: (error, msg) => {
        if (error === null) msg.respond(msg.data)
      }
    })
    const encoder = new TextEncoder()
    const payload = encoder.encode(JSON.stringify({ agentId: "bench-1", function: "increment", args: [] }))
    const decoder = new TextDecoder()
    const conn = nc
    const raw = "raw NATS request/reply round trip (echo responder)"
    const timed = (call: () => Promise<void>) => async (n: number) => {
      const start = performance.now()
      for (let i = 0; i < n; i++) await call()
      return performance.now() - start
    }
    rows.push(
      await measure(
        { suite: SUITE, name: raw, batch, run: timed(async () => void (await conn.request("bench.echo", payload))) },
        options
      )
    )
    rows.push(
      await measure(
        {
          suite: SUITE,
          name: "invoke through the server over NATS request/reply",
          baseline: raw,
          batch,
          run: timed(async () => {
            const reply = await conn.request(`${server.natsSubjectPrefix}.invoke`, payload)
            if (reply.headers?.get("Nats-Service-Error-Code")) throw new Error(decoder.decode(reply.data))
          })
        },
        options
      )
    )
    // node:http with a keep-alive agent (undici's fetch adds several ms per call on a loaded machine)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const invokeUrl = new URL(`${server.url}/agents/bench-1/invoke`)
    const body = JSON.stringify({ function: "increment", args: [] })
    const post = () =>
      new Promise<void>((resolve, reject) => {
        const req = http.request(
          invokeUrl,
          { agent, method: "POST", headers: { "content-type": "application/json" } },
          (res) => {
            let text = ""
            res.setEncoding("utf8")
            res.on("data", (chunk: string) => (text += chunk))
            res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode} ${text}`))))
          }
        )
        req.on("error", reject)
        req.end(body)
      })
    rows.push(
      await measure(
        {
          suite: SUITE,
          name: "invoke through the server over HTTP (node:http keep-alive)",
          baseline: raw,
          batch,
          run: timed(post)
        },
        options
      )
    )
    agent.destroy()
    echo.unsubscribe()
    notes.push(
      "in-process apps/server on the native engine, JetStream event bus and KV/Object Store repositories on one local nats-server"
    )
  } finally {
    await nc?.close()
    Deferred.doneUnsafe(stop, Exit.void)
    if (fiber !== undefined) await Effect.runPromise(Effect.exit(Fiber.join(fiber)))
    await nats.dispose()
  }
  return { suite: SUITE, rows, notes }
}
