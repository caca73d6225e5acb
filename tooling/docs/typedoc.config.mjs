// TypeDoc over every published package (packages/* without "private": true): one module per export
// ("." and every subpath), found through the `@agent-runtime/source` condition of package.json `exports`.
// Validation is on: an undocumented public export, a broken link or a type the reference cannot reach fails the build.
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = new URL("../../packages/", import.meta.url).pathname
const entryPoints = []
/** TypeDoc's module name (the path under packages/, without `/index` and `.ts`) → the import specifier. */
export const moduleNames = {}
for (const dir of readdirSync(root).sort()) {
  const pkg = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"))
  if (pkg.private === true) continue
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    const source = typeof target === "object" ? target["@agent-runtime/source"] : undefined
    if (typeof source !== "string" || !source.endsWith(".ts")) continue
    entryPoints.push(join(root, dir, source))
    const guessed = join(dir, source).replace(/\/index\.ts$|\.ts$/, "")
    moduleNames[guessed] = pkg.name + subpath.slice(1)
  }
}

/** @type {Partial<import("typedoc").TypeDocOptions>} */
export default {
  name: "agent-runtime",
  entryPoints,
  entryPointStrategy: "resolve",
  tsconfig: "./tsconfig.json",
  plugin: ["./module-names.mjs"], // modules named by their import specifier (`@agent-runtime/domain`), not their path
  out: "./dist",
  readme: "none",
  disableSources: true, // no git remote in every checkout: links to the source would be broken
  excludePrivate: true,
  excludeInternal: true,
  excludeExternals: true,
  validation: { notExported: true, invalidLink: true, notDocumented: true },
  treatWarningsAsErrors: true,
  logLevel: "Warn"
}
