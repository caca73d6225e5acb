/**
 * The edge suite's Worker (workerd module syntax): the signed `no-memory`
 * agent bundled with `agent-runtime bundle` (module `agent-runtime:bundle`,
 * an esbuild alias to the generated `bundle.js`), run by the runtime on
 * `@agent-runtime/engine-edge`, next to a raw instance of the same bundled
 * (precompiled) variant.
 *
 * `GET /bench?op=<raw|invoke|none>&n=<count>` runs `add(20, 22)` `n` times —
 * `raw`: the direct export call on `new WebAssembly.Instance(variant)`;
 * `invoke`: `runtime.invoke` in one `Effect.gen`; `none`: nothing (the
 * driver's empty request) — and answers `{ op, n, result }`, or 500 with
 * the error. Timing is done by the driver: workerd freezes the clocks a
 * Worker sees while it computes (they move only across I/O, a Spectre
 * mitigation), so a Worker cannot time its own loop.
 *
 * @since 0.1.0
 */
import { AgentRuntime, type AgentRuntimeShape, AgentRuntimes, agentId, makeMetadata } from "@agent-runtime/domain"
import { EdgeEngine } from "@agent-runtime/engine-edge"
import { BundleRegistry, BundleVerifier } from "@agent-runtime/engine-edge/bundle"
import { bundle } from "agent-runtime:bundle"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"

interface Ready {
  readonly runtime: AgentRuntimeShape
  readonly run: <A, E>(effect: Effect.Effect<A, E, never>) => Promise<A>
  readonly id: ReturnType<typeof agentId>
  readonly add: (a: number, b: number) => number
}

let ready: Promise<Ready> | undefined

const start = async (): Promise<Ready> => {
  const registry = await Effect.runPromise(BundleRegistry.make(bundle))
  const type = registry.manifest.agents[0]
  if (type === undefined) throw new Error("the bundle has no agent type")
  const module = registry.module(type.moduleHash)
  const variant = module?.variants[0]
  const compiled = variant === undefined ? undefined : registry.variant(variant.digest)?.compiled
  if (compiled === undefined) throw new Error(`no bundled variant for ${type.type}`)
  const add = new WebAssembly.Instance(compiled, {}).exports["add"] as (a: number, b: number) => number
  const layer = AgentRuntimes.layerMemory({ name: "bench-edge", limits: registry.manifest.limits }).pipe(
    Layer.provide(Layer.mergeAll(EdgeEngine.layer(registry), BundleVerifier.layer(registry)))
  )
  const managed = ManagedRuntime.make(layer)
  const run = <A, E>(effect: Effect.Effect<A, E, never>): Promise<A> => managed.runPromise(effect)
  const runtime = await managed.runPromise(
    Effect.gen(function* () {
      return yield* AgentRuntime
    })
  )
  const bytes = registry.originalBytes(type.moduleHash)
  if (bytes === undefined) throw new Error("the bundle has no original bytes (includeOriginal)")
  const moduleId = await run(runtime.loadModule(bytes, makeMetadata({ name: type.name, version: type.version })))
  const id = agentId("bench-edge")
  await run(runtime.spawnAgent(id, moduleId, { memoryLimit: type.memoryLimit }))
  return { runtime, run, id, add }
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } })

export default {
  async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url)
      if (url.pathname !== "/bench") return json(404, { error: "GET /bench?op=raw|invoke|none&n=<count>" })
      ready ??= start()
      const ctx = await ready
      const op = url.searchParams.get("op") ?? "none"
      const n = Number(url.searchParams.get("n") ?? "0")
      if (!Number.isSafeInteger(n) || n < 0)
        return json(400, { error: `bad n ${JSON.stringify(url.searchParams.get("n"))}` })
      let result = 0
      if (op === "raw") {
        for (let i = 0; i < n; i++) result = ctx.add(20, i & 1)
      } else if (op === "invoke") {
        result = await ctx.run(
          Effect.gen(function* () {
            let last = 0
            for (let i = 0; i < n; i++) last = (yield* ctx.runtime.invoke(ctx.id, "add", [20, i & 1]))[0] as number
            return last
          })
        )
      } else if (op !== "none") return json(400, { error: `bad op ${JSON.stringify(op)}` })
      return json(200, { op, n, result })
    } catch (e) {
      return json(500, { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) })
    }
  }
}
