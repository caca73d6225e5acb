/**
 * Where a runtime runs (spec `RuntimePlatform`), and what the platform can
 * give the platform-free runtime (`PlatformServices`).
 *
 * - `Browser`: a web page, agents in Web Workers when cross-origin isolated.
 * - `Node`: Node.js, agents in `worker_threads`.
 * - `Edge`: Cloudflare Workers–style isolates (precompiled modules only).
 * - `Native`: in-process on the host's own `WebAssembly` API (tests, dev, any JS host).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

export const RuntimePlatform = Schema.Literals(["Browser", "Node", "Edge", "Native"])
export type RuntimePlatform = typeof RuntimePlatform.Type

/**
 * What the host platform gives the runtime, injected (STYLE.md: the core
 * "feature-detects nothing it can be given"). Every member is optional; the
 * runtime has a platform-free fallback for each.
 */
export interface PlatformServices {
  /**
   * The platform's synchronous SHA-256 (FIPS 180-4): the lowercase hex
   * (64 chars) of the 32-byte digest of `bytes` as given, without changing
   * or keeping them. `loadModule` identifies bytes by this hash (its load
   * cache: a second load of the same bytes costs this hash and a lookup).
   * Without it the runtime hashes inputs below 8 KiB in JavaScript and
   * larger ones with WebCrypto `crypto.subtle.digest` (asynchronous; Node
   * copies the input first). A function that does not give the FIPS 180-4
   * known answers (checked once, when the runtime is built) is not used; an
   * answer that is not a 64-char string, or a throw, makes the runtime hash
   * that input by the fallback. On Node:
   * `node:crypto` `hash("sha256", bytes, "hex")`
   * (`@agent-runtime/engine-node` `NodeEngine.layerPlatform`; its engine
   * layers include it).
   */
  readonly sha256Hex?: ((bytes: Uint8Array) => string) | undefined
}

/**
 * The platform's services of a program (a `Context.Reference`: without a
 * provided value, none — every fallback). A runtime reads it once, when it
 * is built (`AgentRuntimes.layer`), like `ResourcePoolConfig`; provide it
 * beside the engine, with `layerPlatformServices` or a platform's layer.
 *
 * @example
 * ```ts
 * const Live = AgentRuntimes.layerMemory().pipe(
 *   Layer.provide(Layer.mergeAll(NativeEngine.layer, verifier, NodeEngine.layerPlatform))
 * )
 * ```
 */
export const PlatformServices: Context.Reference<PlatformServices> = Context.Reference<PlatformServices>(
  "@agent-runtime/domain/RuntimePlatform/PlatformServices",
  { defaultValue: () => ({}) }
)

/** Provides `PlatformServices`. */
export const layerPlatformServices = (services: PlatformServices): Layer.Layer<never> =>
  Layer.succeed(PlatformServices, services)
