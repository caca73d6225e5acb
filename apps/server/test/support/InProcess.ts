/**
 * A server started in this test process (`Server.serve` on a free port,
 * the committed test-only trust key), and the signed fixture agents as
 * upload bodies.
 */
import { manifestEntry, readAgent } from "@agent-runtime/agents"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { serve, type Started } from "../../src/Server.js"
import { parse, type ServerConfig } from "../../src/ServerConfig.js"

export interface RunningServer extends Started {
  /** Drains and stops it; resolves with the calls still in flight when the drain stopped waiting. */
  readonly stop: () => Promise<number>
}

let unique = 0

/** Starts a server (embedded unless `natsUrl` is given); resolves once it serves HTTP. */
export const startServer = async (overrides: Partial<ServerConfig> = {}): Promise<RunningServer> => {
  const config: ServerConfig = {
    ...parse(["--port", "0", "--trust", "test-only"], {}),
    hostId: `test-${process.pid}-${++unique}`,
    ...overrides
  }
  const stop = Deferred.makeUnsafe<void>()
  let onStarted: (s: Started) => void = () => undefined
  let onFailed: (e: unknown) => void = () => undefined
  const started = new Promise<Started>((resolve, reject) => {
    onStarted = resolve
    onFailed = reject
  })
  const fiber = Effect.runFork(serve(config, Deferred.await(stop), (s) => Effect.sync(() => onStarted(s))))
  fiber.addObserver((exit) => {
    if (Exit.isFailure(exit)) onFailed(new Error(`server ${config.hostId} failed: ${String(exit.cause)}`))
  })
  const s = await started
  return {
    ...s,
    stop: async () => {
      Deferred.doneUnsafe(stop, Exit.void)
      return await Effect.runPromise(Fiber.join(fiber))
    }
  }
}

/** A fixture agent as the `POST /modules` body: signed bytes in base64 with its name and version. */
export const upload = (name: string) => {
  const entry = manifestEntry(name)
  return { name: entry.name, version: entry.version, wasm: Buffer.from(readAgent(name)).toString("base64") }
}

/** JSON request helper: method, url, body → status and parsed body. */
export const request = async (method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> => {
  const response = await fetch(url, {
    method,
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = text === "" ? undefined : JSON.parse(text)
  } catch {
    // not JSON (e.g. /metrics)
  }
  return { status: response.status, body: parsed }
}
