/**
 * Runs a TypeScript entry point of this package: `node --conditions=@agent-runtime/source bin/tsx.mjs src/main.ts [args]`.
 *
 * tsx is registered through its API instead of `node --import tsx` on
 * purpose: `--import` is inherited by every worker thread, and tsx turns on
 * source maps there, which makes Node 20 crash while compiling the `data:`
 * URL worker of `@extism/extism` (`runInWorker: true`): `ERR_INVALID_URL`
 * for `worker.js.map`. Registered here, tsx stays in this thread only.
 */
import { register } from "tsx/esm/api"
import { pathToFileURL } from "node:url"
import { resolve } from "node:path"

const entry = process.argv[2]
if (entry === undefined) {
  console.error("usage: node --conditions=@agent-runtime/source bin/tsx.mjs <file.ts> [args]")
  process.exit(2)
}
register()
process.argv.splice(2, 1)
await import(pathToFileURL(resolve(entry)).href)
