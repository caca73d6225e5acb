/**
 * The edge Worker (Cloudflare Workers / workerd module syntax): hosts the
 * agents of its bundle behind the HTTP routes of `HttpApi.ts`.
 *
 * The bundle (`agent-runtime bundle`, see `bundle.json`) is imported as the
 * module `agent-runtime:bundle` (esbuild alias to the generated `bundle.js`,
 * whose `.wasm` imports are workerd `wasm` modules / wrangler
 * `CompiledWasm`). The runtime starts on the first request and lives as long
 * as the isolate; a bundle that fails its checks answers every request with
 * 503 and the `BundleError`. Nothing escapes `fetch`: defects become 500.
 *
 * Bindings (optional): `AGENT_STATE` — a Workers KV namespace (or anything
 * of `KeyValueStore`'s shape) for agent snapshots.
 *
 * @since 0.1.0
 */
import type { KeyValueStore } from "@agent-runtime/repository-kv"
import { bundle } from "agent-runtime:bundle"
import * as Effect from "effect/Effect"
import { start } from "./EdgeRuntime.js"
import { type ApiContext, errorResponse, handler } from "./HttpApi.js"

interface Env {
  readonly AGENT_STATE?: KeyValueStore | undefined
}

let started: Promise<ApiContext | { readonly _tag: string; readonly message: string }> | undefined

const context = (env: Env) => {
  started ??= Effect.runPromise(
    Effect.catch(start(bundle, { store: env.AGENT_STATE }), (e) => Effect.succeed(e))
  ).catch((e: unknown) => ({ _tag: "Defect", message: e instanceof Error ? e.message : String(e) }))
  return started
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    try {
      const ctx = await context(env)
      if ("_tag" in ctx) return errorResponse(ctx)
      return await handler(ctx)(request)
    } catch (e) {
      return new Response(
        JSON.stringify({ error: { _tag: "Defect", message: e instanceof Error ? e.message : String(e) } }),
        {
          status: 500,
          headers: { "content-type": "application/json" }
        }
      )
    }
  }
}
