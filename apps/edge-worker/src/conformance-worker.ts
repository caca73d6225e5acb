/**
 * The conformance test Worker: runs `@agent-runtime/conformance`'s
 * `suite("edge (workerd)", …)` INSIDE workerd against `engine-edge`, over the
 * conformance bundle (every fixture agent with the variants the suite's
 * agent configs need, built by `scripts/build.ts` with `agent-runtime
 * bundle`), and answers `GET /` with the results as JSON
 * (`{ results: TestResult[] }`, see `testing/VitestShim.ts`); `GET /ready`
 * answers at once (readiness probe, runs nothing); `GET /selftest` runs the
 * runner's own self-test (`testing/SelfTest.ts`). The fixtures
 * are the original signed modules carried by the bundle; verification is the
 * real ed25519 verifier the suite brings (platform-free, it runs here).
 *
 * The suite is registered and run once per isolate; later requests get the
 * same results.
 *
 * @since 0.1.0
 */
import { suite } from "@agent-runtime/conformance"
import { EdgeEngine } from "@agent-runtime/engine-edge"
import { BundleRegistry } from "@agent-runtime/engine-edge/bundle"
import { bundle } from "agent-runtime:bundle"
import * as Effect from "effect/Effect"
import { registerSelfTest } from "./testing/SelfTest.js"
import { run, type TestResult } from "./testing/VitestShim.js"

let results: Promise<{ readonly results: ReadonlyArray<TestResult> } | { readonly error: string }> | undefined

const runSuite = async () => {
  const registry = await Effect.runPromise(BundleRegistry.make(bundle))
  const byName = new Map(registry.manifest.modules.map((m) => [m.name, m]))
  suite("edge (workerd)", EdgeEngine.layer(registry), {
    fixtures: {
      bytes: (name) => {
        const module = byName.get(name)
        const bytes = module === undefined ? undefined : registry.originalBytes(module.moduleHash)
        if (bytes === undefined) throw new Error(`fixture ${name} is not in the conformance bundle`)
        return bytes
      },
      version: (name) => byName.get(name)?.version ?? "1.0.0"
    }
  })
  return { results: await run() }
}

export default {
  async fetch(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname
    if (path === "/ready") return new Response("ok")
    if (path === "/selftest") {
      registerSelfTest()
      return new Response(JSON.stringify({ results: await run() }), { headers: { "content-type": "application/json" } })
    }
    results ??= runSuite().catch((e: unknown) => ({
      error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e)
    }))
    const body = await results
    return new Response(JSON.stringify(body), {
      status: "error" in body ? 500 : 200,
      headers: { "content-type": "application/json" }
    })
  }
}
