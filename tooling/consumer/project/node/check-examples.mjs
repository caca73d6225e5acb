// (a) The README's Effect and Promise examples (apps/examples/src/*.ts, transpiled by run.mjs)
// run on Node from the installed tarballs: no `@agent-runtime/source` condition, so every
// import must resolve to the package's dist/.
import assert from "node:assert/strict"
import { Effect } from "effect"
import { program } from "./effect-example.mjs"
import { main } from "./promise-example.mjs"

for (const name of [
  "@agent-runtime/domain",
  "@agent-runtime/engine-native",
  "@agent-runtime/signing",
  "@agent-runtime/agents"
]) {
  const url = import.meta.resolve(name)
  assert.match(url, /\/node_modules\/@agent-runtime\/[^/]+\/dist\/index\.js$/, `${name} resolved to ${url}`)
}
const effect = await Effect.runPromise(program)
assert.deepEqual(effect, { total: 41, mistake: "SignatureMismatch", health: "Healthy" })
const promise = await main()
assert.deepEqual(promise, { count: 1, refusedWhilePaused: true })
console.log(JSON.stringify({ effect, promise }))
