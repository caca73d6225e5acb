/**
 * Where the suite gets the real agent modules from. Injectable so that every
 * platform can use its own loader (Node reads `packages/agents/build/`, a
 * browser fetches the files, an edge runtime imports them from its bundle).
 *
 * The default loader imports `@agent-runtime/agents` lazily (it reads the
 * build directory with Node's `fs`), so importing the suite itself pulls in no
 * platform API.
 *
 * @since 0.1.0
 */
import type { AgentName } from "@agent-runtime/agents"
import * as Effect from "effect/Effect"

export type { AgentName }

/** Every fixture agent the suite uses. */
export const agentNames: ReadonlyArray<AgentName> = [
  "counter",
  "text",
  "leaky",
  "flaky",
  "trapper",
  "lifecycle",
  "looper",
  "multi",
  "no-memory",
  "host-caller",
  "grower",
  "start-trap"
]

/** A fixture loader: the signed bytes of an agent by name, and its version. */
export interface FixtureLoader {
  /** The signed module bytes (`build/<name>.wasm`, signed with the TEST-ONLY key). */
  readonly bytes: (name: AgentName) => Uint8Array | Promise<Uint8Array>
  /** The version the module was signed for (default `"1.0.0"`, the version of every fixture). */
  readonly version?: ((name: AgentName) => string) | undefined
}

/** The default loader: `readAgent` / `manifestEntry` of `@agent-runtime/agents` (Node). */
export const defaultFixtures: FixtureLoader = {
  bytes: async (name) => (await import("@agent-runtime/agents")).readAgent(name),
  version: () => "1.0.0"
}

/** A loader with a cache: each agent's bytes are read once per suite; callers get a copy. */
export interface Fixtures {
  readonly bytes: (name: AgentName) => Effect.Effect<Uint8Array>
  readonly version: (name: AgentName) => string
}

/** Wraps a loader with a per-name cache; every call returns a fresh copy the caller may modify. */
export const makeFixtures = (loader: FixtureLoader): Fixtures => {
  const cache = new Map<AgentName, Promise<Uint8Array>>()
  return {
    bytes: (name) =>
      Effect.map(
        Effect.promise(() => {
          let p = cache.get(name)
          if (p === undefined) {
            p = Promise.resolve(loader.bytes(name))
            cache.set(name, p)
          }
          return p
        }),
        (b) => b.slice()
      ),
    version: (name) => loader.version?.(name) ?? "1.0.0"
  }
}
