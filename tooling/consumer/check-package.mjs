#!/usr/bin/env node
// `check-package` of one published package (run from its directory by turbo after `build`):
// packs it with `pnpm pack` (which applies `publishConfig.exports` and rewrites `workspace:*`),
// then checks the tarball with publint (strict: warnings fail) and `@arethetypeswrong/cli`
// (profile `esm-only`: node16-ESM and bundler resolution; the packages ship no CommonJS).
// The temporary directory is removed at the end; a failing check exits non-zero.
import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const dir = mkdtempSync(join(tmpdir(), "check-package-"))
const run = (cmd, args, stdio = "inherit") => {
  const r = spawnSync(cmd, args, { stdio })
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    process.exit(r.status ?? 1)
  }
}
try {
  run("pnpm", ["pack", "--pack-destination", dir], ["ignore", "ignore", "inherit"])
  const tarball = join(
    dir,
    readdirSync(dir).find((f) => f.endsWith(".tgz"))
  )
  run("publint", ["run", tarball, "--strict"])
  run("attw", [tarball, "--profile", "esm-only", "--no-emoji", "--no-color", "--format", "table-flipped"])
} finally {
  rmSync(dir, { recursive: true, force: true })
}
