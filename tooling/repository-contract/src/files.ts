/**
 * File-system helpers for adapter tests: scoped temporary directories and
 * making a directory or file read-only in a way that holds even for root.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** A fresh temporary directory, removed when the scope closes. */
export const tempDirectory = (prefix = "agent-runtime-repo-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

const canWrite = (dir: string): boolean => {
  const probe = path.join(dir, `.probe-${process.pid}`)
  try {
    fs.writeFileSync(probe, "x")
    fs.rmSync(probe)
    return true
  } catch {
    return false
  }
}

const chattr = (flag: "+i" | "-i", target: string): boolean => {
  try {
    execFileSync("chattr", [flag, target], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/**
 * Makes `target` (a directory, and the given files in it) read-only until the
 * scope closes: mode 0555/0444, plus the immutable attribute (`chattr +i`)
 * when running as root, whom modes do not stop. Gives `false` if the
 * platform offers no way to do so (the caller then skips its test).
 */
export const readOnly = (
  target: string,
  files: ReadonlyArray<string> = []
): Effect.Effect<boolean, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      for (const f of files) fs.chmodSync(f, 0o444)
      fs.chmodSync(target, 0o555)
      if (process.getuid?.() === 0) {
        for (const f of files) chattr("+i", f)
        chattr("+i", target)
      }
      return canWrite(target) ? false : true
    }),
    () =>
      Effect.sync(() => {
        if (process.getuid?.() === 0) {
          chattr("-i", target)
          for (const f of files) chattr("-i", f)
        }
        fs.chmodSync(target, 0o755)
        for (const f of files) fs.chmodSync(f, 0o644)
      })
  )
