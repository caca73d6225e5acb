/**
 * Where a runtime runs (spec `RuntimePlatform`).
 *
 * - `Browser`: a web page, agents in Web Workers when cross-origin isolated.
 * - `Node`: Node.js, agents in `worker_threads`.
 * - `Edge`: Cloudflare Workers–style isolates (precompiled modules only).
 * - `Native`: in-process on the host's own `WebAssembly` API (tests, dev, any JS host).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

export const RuntimePlatform = Schema.Literals(["Browser", "Node", "Edge", "Native"])
export type RuntimePlatform = typeof RuntimePlatform.Type
