/**
 * The demo's runtimes on one browser engine, verifying the real signed
 * agents of `@agent-runtime/agents` with the TEST-ONLY trust store (never
 * trust that key in production), and the operations the dashboard's buttons
 * call.
 *
 * Two runtimes share the engine (and its Web Workers):
 * - the swarm runtime: in-memory repositories, no persistence — the live
 *   dashboard's traffic, pressure and runaway calls stay fast;
 * - the durable runtime: `IndexedDbRepositories.layerOrMemory` (IndexedDB,
 *   or the in-memory fallback when IndexedDB cannot be opened, with the
 *   reason) and `persistence: { snapshotAfterCalls: true, restoreOnStart:
 *   true }`. Every successful call of a durable agent saves its state before
 *   the call returns, and on the next page load (a reload mid-invocation
 *   included) the runtime brings every saved agent back (its module from the
 *   ModuleRepository, verified again). Durable agents have ids `<kind>-d<n>`.
 *
 * Snapshotting every call of every agent (leaky agents grow to 16 MiB;
 * traffic runs hundreds of calls a second) would make the dashboard crawl,
 * so only agents spawned with the "durable" checkbox are persisted.
 */
import {
  AgentRuntime,
  type AgentRuntimeShape,
  AgentRuntimes,
  type AgentInfo,
  agentId,
  createRuntime,
  EventBuses,
  ExecutionAuthorizers,
  InstanceRepositories,
  InstanceRepository,
  makeMetadata,
  MetricsRepositories,
  type ModuleId,
  ModuleRepositories,
  type PromiseRuntime,
  type RuntimeEvent,
  type RuntimeStats,
  WasmEngine
} from "@agent-runtime/domain"
import { BrowserEngine } from "@agent-runtime/engine-browser"
import { IndexedDbRepositories } from "@agent-runtime/repository-indexeddb"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"

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

const urls = import.meta.glob<string>("../../../packages/agents/build/*.wasm", {
  query: "?url",
  import: "default",
  eager: true
})

const fetchAgent = async (name: string): Promise<Uint8Array> => {
  const url = urls[`../../../packages/agents/build/${name}.wasm`]
  if (url === undefined) throw new Error(`agent ${name} is not built: run pnpm --filter @agent-runtime/agents fixtures`)
  const response = await fetch(url)
  if (!response.ok) throw new Error(`fetch ${name}: HTTP ${response.status}`)
  return new Uint8Array(await response.arrayBuffer())
}

/** Where the durable runtime keeps modules and snapshots, and why. */
export interface Storage {
  readonly backend: "indexedDB" | "memory"
  /** Why the in-memory fallback is used (`undefined` on IndexedDB). */
  readonly reason: string | undefined
}

/** What the durable runtime brought back when the page loaded. */
export interface Restored {
  readonly restored: ReadonlyArray<string>
  /** Saved agents that are still in the InstanceRepository but could not be brought back. */
  readonly failed: ReadonlyArray<string>
}

/** Both runtimes' stats added up (memory in bytes; the pressure level is the worse of the two pools). */
export interface DashboardStats {
  readonly agents: number
  readonly durableAgents: number
  readonly invocations: number
  readonly evicted: number
  readonly snapshotFailures: number
  readonly agentsByState: Readonly<Record<string, number>>
  readonly memory: {
    readonly total: number
    readonly used: number
    readonly reserved: number
    readonly pressureLevel: string
  }
}

export interface Swarm {
  /** The swarm runtime (in-memory, not persisted). */
  readonly rt: PromiseRuntime
  /** The durable runtime (IndexedDB or its fallback; snapshot after every call, restore on start). */
  readonly durable: PromiseRuntime
  readonly engine: BrowserEngine.BrowserEngineShape
  readonly storage: Storage
  readonly restored: Restored
  /** The last count each counter agent acknowledged (the result of its last `increment`, or `get` after a restore). */
  readonly counts: ReadonlyMap<string, number>
  readonly isDurable: (id: string) => boolean
  readonly spawn: (kind: Kind, count: number, durable?: boolean) => Promise<number>
  readonly invokeAll: () => Promise<{ readonly ok: number; readonly failed: number }>
  readonly invokeOne: (id: string) => Promise<void>
  readonly pause: (id: string) => Promise<void>
  readonly resume: (id: string) => Promise<void>
  readonly evict: (id: string) => Promise<void>
  readonly pressure: () => Promise<number>
  readonly runaway: () => Promise<string>
  readonly health: () => Promise<number>
  readonly agents: () => Promise<ReadonlyArray<AgentInfo>>
  readonly stats: () => Promise<DashboardStats>
  readonly onEvent: (listener: (event: RuntimeEvent) => void) => Promise<() => void>
}

/** Pool size of the swarm runtime: small, so pressure is easy to reach. */
export const POOL_BYTES = 96 * MiB
/** Pool size of the durable runtime. */
export const DURABLE_POOL_BYTES = 32 * MiB
/** The demo's IndexedDB database. */
export const DATABASE = "agent-runtime-browser-demo"

const durableId = /-d(\d+)$/

/** A Promise facade over a runtime built from our own layer (`createRuntime` always uses in-memory repositories). */
const facadeOf = <R, ER>(managed: ManagedRuntime.ManagedRuntime<R, ER>, rt: AgentRuntimeShape): PromiseRuntime => {
  const run = async <A, E>(effect: Effect.Effect<A, E, any>): Promise<A> => {
    const exit = await managed.runPromiseExit(effect as Effect.Effect<A, E, R>)
    if (Exit.isSuccess(exit)) return exit.value
    const error = Cause.findError(exit.cause)
    throw error._tag === "Success" ? error.success : Cause.squash(exit.cause)
  }
  const facade: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(rt)) {
    if (key === "events") continue
    if (typeof value === "function") {
      facade[key] = (...args: Array<unknown>) =>
        run((value as (...a: Array<unknown>) => Effect.Effect<unknown>)(...args))
    } else if (Effect.isEffect(value)) {
      facade[key] = () => run(value)
    } else {
      facade[key] = value
    }
  }
  facade["onEvent"] = async (listener: (event: RuntimeEvent) => void) => {
    const fiber = await run(
      Effect.gen(function* () {
        const started = yield* Latch.make()
        const fiber = yield* Effect.forkDetach(
          Effect.scoped(
            Effect.gen(function* () {
              const stream = yield* rt.events
              yield* started.open
              yield* Stream.runForEach(stream, (e) => Effect.sync(() => listener(e)))
            })
          )
        )
        yield* started.await
        return fiber
      })
    )
    return () => void managed.runFork(Fiber.interrupt(fiber))
  }
  facade["publish"] = () => Promise.reject(new Error("the durable runtime consumes no events"))
  facade["dispose"] = () => managed.dispose()
  return facade as PromiseRuntime
}

const memoryRepositories = (reason: string) =>
  Layer.mergeAll(
    ModuleRepositories.layerMemory,
    InstanceRepositories.layerMemory,
    MetricsRepositories.layerMemory,
    Layer.succeed(IndexedDbRepositories.IndexedDbStatus, { backend: "memory", reason })
  )

/** Options of `createSwarm`. */
export interface SwarmOptions {
  /** `"auto"`: IndexedDB when it opens, memory otherwise; `"memory"`: never touch IndexedDB. */
  readonly storage?: "auto" | "memory"
}

export const createSwarm = async (options: SwarmOptions = {}): Promise<Swarm> => {
  const engine = await Effect.runPromise(BrowserEngine.make())
  const engineLayer = Layer.succeed(WasmEngine, engine)
  const verifier = Signing.layer({ trustStore: testOnlyTrustStore(), allowUnsigned: false })
  const health = { timeoutMs: 1000 }
  const maintenance = { healthIntervalMs: 3000 }

  const durableLayer = AgentRuntimes.layer({
    name: "browser-demo-durable",
    pool: { totalMemory: DURABLE_POOL_BYTES, overcommit: true }, // agents reserve 1 MiB and grow: the demo over-commits
    health,
    maintenance,
    persistence: { snapshotAfterCalls: true, restoreOnStart: true }
  }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        options.storage === "memory"
          ? memoryRepositories("?storage=memory in the page address: IndexedDB is not used")
          : IndexedDbRepositories.layerOrMemory({ name: DATABASE }),
        EventBuses.layerMemory,
        ExecutionAuthorizers.layerAllowAll
      )
    ),
    Layer.provide(Layer.mergeAll(engineLayer, verifier))
  )
  const managed = ManagedRuntime.make(durableLayer)
  // `restoreOnStart`: building the layer brings every saved agent back before this resolves
  const [durableShape, status, saved] = await managed.runPromise(
    Effect.gen(function* () {
      const rt = yield* AgentRuntime
      const status = yield* IndexedDbRepositories.IndexedDbStatus
      const saved = yield* Effect.orElseSucceed((yield* InstanceRepository).listSaved, () => [])
      return [rt, status, saved] as const
    })
  )
  const durable = facadeOf(managed, durableShape)

  const rt = await createRuntime({
    engine: engineLayer,
    verifier,
    settings: { name: "browser-demo", pool: { totalMemory: POOL_BYTES, overcommit: true }, health, maintenance }
  })

  const isDurable = (id: string) => durableId.test(id)
  const runtimeOf = (id: string) => (isDurable(id) ? durable : rt)
  const kindOf = (id: string): Kind => id.slice(0, id.lastIndexOf("-")) as Kind
  const counts = new Map<string, number>()

  const restoredAgents = (await durable.agents()).map((a) => a.agentId as string)
  // the count of each restored counter, read back through the agent
  await Promise.all(
    restoredAgents
      .filter((id) => kindOf(id) === "counter")
      .map(async (id) => {
        try {
          const [n] = await durable.invoke(agentId(id), "get", [])
          if (typeof n === "number") counts.set(id, n)
        } catch {
          // a paused agent cannot be called: its count shows once it runs again
        }
      })
  )
  const restored: Restored = {
    restored: restoredAgents,
    failed: saved.filter((id) => !restoredAgents.includes(id))
  }

  const modules = new Map<string, Promise<ModuleId>>()
  const moduleOf = (kind: Kind, target: PromiseRuntime) => {
    const key = `${target === durable ? "d" : "s"}:${kind}`
    let m = modules.get(key)
    if (m === undefined) {
      m = fetchAgent(kind).then((bytes) => target.loadModule(bytes, makeMetadata({ name: kind, version: "1.0.0" })))
      m.catch(() => modules.delete(key))
      modules.set(key, m)
    }
    return m
  }
  const serial = new Map<string, number>()
  // durable ids continue after the restored ones (and after saved ones that failed to restore)
  for (const id of [...restored.restored, ...restored.failed]) {
    const n = Number(durableId.exec(id)?.[1])
    const key = `${kindOf(id)}-d`
    if (n > (serial.get(key) ?? 0)) serial.set(key, n)
  }
  const nextId = (kind: Kind, durableAgent: boolean) => {
    const key = durableAgent ? `${kind}-d` : `${kind}-`
    const n = (serial.get(key) ?? 0) + 1
    serial.set(key, n)
    return `${key}${n}`
  }

  const spawn: Swarm["spawn"] = async (kind, count, durableAgent = false) => {
    const target = durableAgent ? durable : rt
    const moduleId = await moduleOf(kind, target)
    let spawned = 0
    await Promise.all(
      Array.from({ length: count }, async () => {
        const id = nextId(kind, durableAgent)
        try {
          // each agent reserves 1 MiB of the pool and may grow to its limit: growth shows as pressure
          await target.spawnAgent(agentId(id), moduleId, {
            memoryLimit: (kind === "leaky" ? 16 : 2) * MiB,
            memoryReservation: MiB,
            ...(kind === "looper" ? { timeoutMs: 1500 } : {})
          })
          if (kind === "counter") counts.set(id, 0)
          spawned++
        } catch {
          // InsufficientMemory and friends show up in the events and the gauge
        }
      })
    )
    return spawned
  }

  const invokeOne: Swarm["invokeOne"] = async (id) => {
    const kind = kindOf(id)
    const { fn, args } = kinds[kind]
    const [result] = await runtimeOf(id).invoke(agentId(id), fn, [...args])
    // acknowledged: on a durable agent its state is already saved
    if (kind === "counter" && typeof result === "number") counts.set(id, result)
  }

  const agents = async () => [...(await rt.agents()), ...(await durable.agents())]
  const LEVELS = ["Normal", "Warning", "High", "Critical"]
  const stats = async (): Promise<DashboardStats> => {
    const [a, b] = (await Promise.all([rt.stats(), durable.stats()])) as [RuntimeStats, RuntimeStats]
    const agentsByState: Record<string, number> = { ...a.agentsByState }
    for (const [k, v] of Object.entries(b.agentsByState)) agentsByState[k] = (agentsByState[k] ?? 0) + v
    return {
      agents: a.agents + b.agents,
      durableAgents: b.agents,
      invocations: a.invocations + b.invocations,
      evicted: a.evicted + b.evicted,
      snapshotFailures: b.snapshotFailures,
      agentsByState,
      memory: {
        total: a.memory.total + b.memory.total,
        used: a.memory.used + b.memory.used,
        reserved: a.memory.reserved + b.memory.reserved,
        pressureLevel:
          LEVELS[Math.max(LEVELS.indexOf(a.memory.pressureLevel), LEVELS.indexOf(b.memory.pressureLevel))] ?? "Normal"
      }
    }
  }

  return {
    rt,
    durable,
    engine,
    storage: { backend: status.backend, reason: status.reason },
    restored,
    counts,
    isDurable,
    spawn,
    invokeOne,
    invokeAll: async () => {
      const running = (await agents()).filter((a) => a.state === "Running" && kindOf(a.agentId) !== "looper")
      const results = await Promise.allSettled(running.map((a) => invokeOne(a.agentId)))
      return {
        ok: results.filter((r) => r.status === "fulfilled").length,
        failed: results.filter((r) => r.status === "rejected").length
      }
    },
    pause: (id) => runtimeOf(id).pause(agentId(id)),
    resume: (id) => runtimeOf(id).resume(agentId(id)),
    evict: (id) => runtimeOf(id).evictAgent(agentId(id), "Manual"),
    pressure: async () => {
      // leaky agents grow their linear memory until the pool is past its warning level, then the runtime evicts
      await spawn("leaky", 6)
      const leaky = (await rt.agents()).filter((a) => kindOf(a.agentId) === "leaky" && a.state === "Running")
      for (let round = 0; round < 40; round++) {
        const s = await rt.stats()
        if (s.memory.pressureLevel !== "Normal" && s.memory.pressureLevel !== "Warning") break
        await Promise.allSettled(leaky.map((a) => rt.invoke(a.agentId, "leak", [1024])))
      }
      return (await rt.handleMemoryPressure()).length
    },
    runaway: async () => {
      await spawn("looper", 1)
      const id = `looper-${serial.get("looper-")}`
      try {
        await rt.invoke(agentId(id), "spin", [])
        return "returned"
      } catch (e) {
        return (e as { _tag?: string })._tag ?? String(e)
      }
    },
    health: async () => (await rt.checkHealth()).length + (await durable.checkHealth()).length,
    agents,
    stats,
    onEvent: async (listener) => {
      const [a, b] = await Promise.all([rt.onEvent(listener), durable.onEvent(listener)])
      return () => {
        a()
        b()
      }
    }
  }
}
