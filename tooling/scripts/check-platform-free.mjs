#!/usr/bin/env node
// Fails when a platform-free package (domain, wasm-binary) reaches for a platform API:
// `node:*` / Node built-in modules, DOM or worker globals, wall-clock time or ambient randomness.
// Usage: node check-platform-free.mjs <dir>...
import { readdirSync, readFileSync, statSync } from "node:fs"
import { builtinModules } from "node:module"
import { join, relative } from "node:path"

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))
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
  const text = readFileSync(file, "utf8")
  const code = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " ")).replace(/\/\/.*$/gm, "")
  for (const m of code.matchAll(importRe)) {
    const spec = m[1] ?? m[2] ?? m[3]
    if (builtins.has(spec) || builtins.has(spec.split("/")[0]) || spec.startsWith("node:")) {
      problems.push(`${relative(process.cwd(), file)}: imports platform module "${spec}"`)
    }
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
