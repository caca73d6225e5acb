#!/usr/bin/env node
// Fails when browser source imports a Node built-in (`node:*`, `fs`, `worker_threads`, …) or uses
// `require` / `process`: the package must build for browsers with no Node built-ins.
// Usage: node check-browser-safe.mjs <dir>...
import { readdirSync, readFileSync, statSync } from "node:fs"
import { builtinModules } from "node:module"
import { join, relative } from "node:path"

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))
const importRe = /(?:import|export)\s[^"'`]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g
const files = []
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p)
    else if (/\.(?:ts|mts|js|mjs)$/.test(name)) files.push(p)
  }
}
for (const dir of process.argv.slice(2)) walk(dir)
const problems = []
for (const file of files) {
  const code = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "")
  for (const m of code.matchAll(importRe)) {
    const spec = m[1] ?? m[2] ?? m[3]
    if (spec.startsWith("node:") || builtins.has(spec) || builtins.has(spec.split("/")[0])) {
      problems.push(`${relative(process.cwd(), file)}: imports Node built-in "${spec}"`)
    }
  }
  if (/\brequire\s*\(/.test(code)) problems.push(`${relative(process.cwd(), file)}: uses require()`)
  if (/\bprocess\./.test(code)) problems.push(`${relative(process.cwd(), file)}: uses process`)
}
if (problems.length > 0) {
  console.error(problems.join("\n"))
  process.exit(1)
}
console.log(`browser-safe: ${files.length} files, no Node built-ins`)
