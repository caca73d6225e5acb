/**
 * Serves the built edge Worker with the npm `workerd` binary on 127.0.0.1
 * (`pnpm --filter @agent-runtime/edge-worker serve [port] [dir]`, default
 * 8787 and `dist/worker`; `dir` holds a workerd `config.capnp` whose socket is
 * named `http`). Run `build` first. workerd runs in its own process group, taken down with
 * this process: SIGINT/SIGTERM (pnpm forwards them) or the death of its
 * parent stop workerd too, so killing the PID you started frees the port
 * (`tooling/scripts/process-group.mjs`).
 */
import { runInGroup } from "../../../tooling/scripts/process-group.mjs"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const app = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const dir = process.argv[3] === undefined ? join(app, "dist", "worker") : resolve(process.argv[3])
if (!existsSync(join(dir, "config.capnp"))) {
  console.error(`${join(dir, "config.capnp")} is missing: run \`pnpm --filter @agent-runtime/edge-worker build\` first`)
  process.exit(2)
}
const port = Number(process.argv[2] ?? "8787")
const workerd = join(
  dirname(createRequire(join(app, "package.json")).resolve("workerd/package.json")),
  "bin",
  "workerd"
)
console.log(`edge Worker on http://127.0.0.1:${port}`)
runInGroup(workerd, ["serve", join(dir, "config.capnp"), "--socket-addr", `http=127.0.0.1:${port}`], { cwd: dir })
