/**
 * Serves the built edge Worker with the npm `workerd` binary on 127.0.0.1
 * (`pnpm --filter @agent-runtime/edge-worker serve [port]`, default 8787).
 * Run `build` first.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const app = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const dir = join(app, "dist", "worker")
if (!existsSync(join(dir, "config.capnp"))) {
  console.error("dist/worker/config.capnp is missing: run `pnpm --filter @agent-runtime/edge-worker build` first")
  process.exit(2)
}
const port = Number(process.argv[2] ?? "8787")
const workerd = join(dirname(createRequire(join(app, "package.json")).resolve("workerd/package.json")), "bin", "workerd")
console.log(`edge Worker on http://127.0.0.1:${port}`)
const child = spawn(workerd, ["serve", join(dir, "config.capnp"), "--socket-addr", `http=127.0.0.1:${port}`], { cwd: dir, stdio: "inherit" })
child.on("exit", (code) => process.exit(code ?? 1))
