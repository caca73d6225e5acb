/**
 * The demo's runtime: an `AgentRuntime` (Promise facade) on the browser
 * engine, verifying the real signed agents of `@agent-runtime/agents` with
 * the TEST-ONLY trust store (never trust that key in production), and the
 * operations the dashboard's buttons call.
 */
import {
  agentId,
  createRuntime,
  makeMetadata,
  type ModuleId,
  type PromiseRuntime,
  type RuntimeEvent,
  WasmEngine
} from "@agent-runtime/domain"
import { BrowserEngine } from "@agent-runtime/engine-browser"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export const MiB = 1024 * 1024

/** The agent kinds the swarm spawns, and the call each one's "work" is. */
export const kinds = {
  counter: { fn: "increment", args: [] },
  lifecycle: { fn: "bump", args: [] },
  flaky: { fn: "work", args: [] },
  leaky: { fn: "leak", args: [64] },
  looper: { fn: "spin_n", args: [2000] }
} as const

export type Kind = keyof typeof kinds

const urls = import.meta.glob<string>("../../../packages/agents/build/*.wasm", { query: "?url", import: "default", eager: true })

const fetchAgent = async (name: string): Promise<Uint8Array> => {
  const url = urls[`../../../packages/agents/build/${name}.wasm`]
  if (url === undefined) throw new Error(`agent ${name} is not built: run pnpm --filter @agent-runtime/agents fixtures`)
  const response = await fetch(url)
  if (!response.ok) throw new Error(`fetch ${name}: HTTP ${response.status}`)
  return new Uint8Array(await response.arrayBuffer())
}

export interface Swarm {
  readonly rt: PromiseRuntime
  readonly engine: BrowserEngine.BrowserEngineShape
  readonly spawn: (kind: Kind, count: number) => Promise<number>
  readonly invokeAll: () => Promise<{ readonly ok: number; readonly failed: number }>
  readonly invokeOne: (id: string) => Promise<void>
  readonly pause: (id: string) => Promise<void>
  readonly resume: (id: string) => Promise<void>
  readonly evict: (id: string) => Promise<void>
  readonly pressure: () => Promise<number>
  readonly runaway: () => Promise<string>
  readonly health: () => ReturnType<PromiseRuntime["checkHealth"]>
  readonly onEvent: (listener: (event: RuntimeEvent) => void) => Promise<() => void>
}

/** Pool size of the demo: small, so pressure is easy to reach. */
export const POOL_BYTES = 96 * MiB

export const createSwarm = async (): Promise<Swarm> => {
  const engine = await Effect.runPromise(BrowserEngine.make())
  const rt = await createRuntime({
    engine: Layer.succeed(WasmEngine, engine),
    verifier: Signing.layer({ trustStore: testOnlyTrustStore(), allowUnsigned: false }),
    settings: {
      name: "browser-demo",
      pool: { totalMemory: POOL_BYTES },
      health: { timeoutMs: 1000 },
      maintenance: { healthIntervalMs: 3000 }
    }
  })
  const modules = new Map<Kind, Promise<ModuleId>>()
  const moduleOf = (kind: Kind) => {
    let m = modules.get(kind)
    if (m === undefined) {
      m = fetchAgent(kind).then((bytes) => rt.loadModule(bytes, makeMetadata({ name: kind, version: "1.0.0" })))
      modules.set(kind, m)
    }
    return m
  }
  const serial = new Map<Kind, number>()
  const kindOf = (id: string): Kind => id.slice(0, id.lastIndexOf("-")) as Kind

  const spawn: Swarm["spawn"] = async (kind, count) => {
    const moduleId = await moduleOf(kind)
    let spawned = 0
    await Promise.all(Array.from({ length: count }, async () => {
      const n = (serial.get(kind) ?? 0) + 1
      serial.set(kind, n)
      try {
        // each agent reserves 1 MiB of the pool and may grow to its limit: growth shows as pressure
        await rt.spawnAgent(agentId(`${kind}-${n}`), moduleId, {
          memoryLimit: (kind === "leaky" ? 16 : 2) * MiB,
          memoryReservation: MiB,
          ...(kind === "looper" ? { timeoutMs: 1500 } : {})
        })
        spawned++
      } catch {
        // InsufficientMemory and friends show up in the events and the gauge
      }
    }))
    return spawned
  }

  const invokeOne: Swarm["invokeOne"] = async (id) => {
    const { fn, args } = kinds[kindOf(id)]
    await rt.invoke(agentId(id), fn, [...args])
  }

  return {
    rt,
    engine,
    spawn,
    invokeOne,
    invokeAll: async () => {
      const agents = (await rt.agents()).filter((a) => a.state === "Running" && kindOf(a.agentId) !== "looper")
      const results = await Promise.allSettled(agents.map((a) => invokeOne(a.agentId)))
      return { ok: results.filter((r) => r.status === "fulfilled").length, failed: results.filter((r) => r.status === "rejected").length }
    },
    pause: (id) => rt.pause(agentId(id)),
    resume: (id) => rt.resume(agentId(id)),
    evict: (id) => rt.evictAgent(agentId(id), "Manual"),
    pressure: async () => {
      // leaky agents grow their linear memory until the pool is past its warning level, then the runtime evicts
      await spawn("leaky", 6)
      const leaky = (await rt.agents()).filter((a) => kindOf(a.agentId) === "leaky" && a.state === "Running")
      for (let round = 0; round < 40; round++) {
        const stats = await rt.stats()
        if (stats.memory.pressureLevel !== "Normal" && stats.memory.pressureLevel !== "Warning") break
        await Promise.allSettled(leaky.map((a) => rt.invoke(a.agentId, "leak", [1024])))
      }
      return (await rt.handleMemoryPressure()).length
    },
    runaway: async () => {
      await spawn("looper", 1)
      const id = `looper-${serial.get("looper")}`
      try {
        await rt.invoke(agentId(id), "spin", [])
        return "returned"
      } catch (e) {
        return (e as { _tag?: string })._tag ?? String(e)
      }
    },
    health: () => rt.checkHealth(),
    onEvent: (listener) => rt.onEvent(listener)
  }
}
