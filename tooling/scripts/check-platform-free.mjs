#!/usr/bin/env node
// Fails when a platform-free package (domain, wasm-binary) reaches for a platform API:
// `node:*` / Node built-in modules, DOM or worker globals, wall-clock time or ambient randomness.
// Usage: node check-platform-free.mjs <dir>...
import { relative } from "node:path"
import { codeOf, importsOf, isNodeBuiltin, sourceFiles } from "./source-scan.mjs"

const forbiddenGlobals = [
  [/\bDate\.now\s*\(/, "Date.now() (use Effect Clock)"],
  [/\bnew Date\s*\(/, "new Date() (use Effect Clock / DateTime)"],
  [/\bMath\.random\s*\(/, "Math.random() (use Effect Random)"],
  [/\b(?:setTimeout|setInterval|setImmediate)\s*\(/, "timers (use Effect Schedule / Clock)"],
  [/\bprocess\./, "process (Node global)"],
  [/\b(?:window|document|navigator|localStorage|indexedDB)\./, "DOM global"],
  [/\bnew (?:Worker|SharedWorker|BroadcastChannel)\s*\(/, "worker / channel constructor"],
  [/\brequire\s*\(/, "require()"]
]
const files = sourceFiles(process.argv.slice(2))
const problems = []
for (const file of files) {
  const code = codeOf(file)
  for (const spec of importsOf(code)) {
    if (isNodeBuiltin(spec)) problems.push(`${relative(process.cwd(), file)}: imports platform module "${spec}"`)
  }
  code.split("\n").forEach((line, i) => {
    for (const [re, what] of forbiddenGlobals) {
      if (re.test(line)) problems.push(`${relative(process.cwd(), file)}:${i + 1}: uses ${what}`)
    }
  })
}
if (problems.length > 0) {
  console.error(`platform-free check failed (${problems.length}):\n  ` + problems.join("\n  "))
  process.exit(1)
}
console.log(`platform-free: ${files.length} files clean`)
