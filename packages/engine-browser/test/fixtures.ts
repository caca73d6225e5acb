/**
 * The real signed agents in the browser: Vite serves `packages/agents/build/`
 * (`import.meta.glob` with `?url`) and the tests `fetch` the bytes, so the
 * conformance suite reads the very files Node reads.
 */
import type { FixtureLoader } from "@agent-runtime/conformance"

const urls = import.meta.glob<string>("../../agents/build/*.wasm", { query: "?url", import: "default", eager: true })

/** Fetches `build/<name>.wasm`. */
export const agentBytes = async (name: string): Promise<Uint8Array> => {
  const url = urls[`../../agents/build/${name}.wasm`]
  if (url === undefined) throw new Error(`no built agent ${name}: run \`pnpm --filter @agent-runtime/agents fixtures\``)
  const response = await fetch(url)
  if (!response.ok) throw new Error(`fetch ${url}: HTTP ${response.status}`)
  return new Uint8Array(await response.arrayBuffer())
}

/** The conformance suite's fixture loader for the browser. */
export const browserFixtures: FixtureLoader = { bytes: agentBytes }
