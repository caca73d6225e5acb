#!/usr/bin/env node
// Fails when browser source imports a Node built-in (`node:*`, `fs`, `worker_threads`, …) or uses
// `require` / `process`: the package must build for browsers with no Node built-ins.
// Usage: node check-browser-safe.mjs <dir>...
import { relative } from "node:path"
import { codeOf, importsOf, isNodeBuiltin, sourceFiles } from "./source-scan.mjs"

const files = sourceFiles(process.argv.slice(2))
const problems = []
for (const file of files) {
  const code = codeOf(file)
  const at = relative(process.cwd(), file)
  for (const spec of importsOf(code)) if (isNodeBuiltin(spec)) problems.push(`${at}: imports Node built-in "${spec}"`)
  if (/\brequire\s*\(/.test(code)) problems.push(`${at}: uses require()`)
  if (/\bprocess\./.test(code)) problems.push(`${at}: uses process`)
}
if (problems.length > 0) {
  console.error(problems.join("\n"))
  process.exit(1)
}
console.log(`browser-safe: ${files.length} files, no Node built-ins`)
