// What the source checks (check-platform-free.mjs, check-browser-safe.mjs) share: the source files
// below some folders, their code without comments (line numbers kept), the module specifiers they
// import, and whether a specifier names a Node built-in module.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { builtinModules } from "node:module"
import { join } from "node:path"

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))
const importRe =
  /(?:import|export)\s[^"'`]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g

/** Every .ts/.mts/.js/.mjs file below `dirs`. */
export const sourceFiles = (dirs) => {
  const files = []
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (/\.(?:ts|mts|js|mjs)$/.test(name)) files.push(p)
    }
  }
  for (const dir of dirs) walk(dir)
  return files
}

/** A file's code with block and line comments blanked (line numbers stay right). */
export const codeOf = (file) =>
  readFileSync(file, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "))
    .replace(/\/\/.*$/gm, "")

/** The module specifiers `code` imports or re-exports (static and dynamic). */
export const importsOf = (code) => [...code.matchAll(importRe)].map((m) => m[1] ?? m[2] ?? m[3])

/** True when `spec` names a Node built-in module (`fs`, `node:fs`, `fs/promises`, …). */
export const isNodeBuiltin = (spec) =>
  spec.startsWith("node:") || builtins.has(spec) || builtins.has(spec.split("/")[0])
