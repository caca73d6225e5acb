// Proof that the reference's validation bites: runs TypeDoc (the same CLI, with the `validation`,
// `treatWarningsAsErrors` and exclusion options of typedoc.config.mjs) on a temporary entry point twice —
// every export documented: it must pass; one public export without a doc comment: it must fail naming that
// export. Runs before the reference in the `docs` task (`pnpm --filter @agent-runtime/docs docs`), about 5 s.
// `emit: "none"`: validation only, no HTML. Exit code 0 when both hold, 1 otherwise (with TypeDoc's output).
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const here = fileURLToPath(new URL(".", import.meta.url))
const typedoc = join(here, "node_modules", "typedoc", "bin", "typedoc")
const dir = mkdtempSync(join(tmpdir(), "docs-validation-"))

const documented = `/**
 * A documented module.
 *
 * @since 0.1.0
 */

/** Bytes in one WebAssembly page. */
export const PAGE = 65_536
`
const variants = {
  documented,
  undocumented: `${documented}
export const undocumentedExport = (pages: number): number => pages * PAGE
`
}

/** Runs TypeDoc with the real config's validation on `source`; returns its exit status and output. */
const run = (name, source) => {
  const entry = join(dir, `${name}.ts`)
  writeFileSync(entry, source)
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, target: "ES2022", module: "ESNext", moduleResolution: "Bundler", noEmit: true },
      include: ["*.ts"]
    })
  )
  const config = join(dir, `${name}.typedoc.mjs`)
  writeFileSync(
    config,
    `import base from ${JSON.stringify(join(here, "typedoc.config.mjs"))}
export default {
  ...base,
  name: ${JSON.stringify(name)},
  entryPoints: [${JSON.stringify(entry)}],
  tsconfig: ${JSON.stringify(join(dir, "tsconfig.json"))},
  plugin: [],
  emit: "none", // validation only: no HTML
  out: ${JSON.stringify(join(dir, `${name}-out`))}
}
`
  )
  const r = spawnSync(process.execPath, [typedoc, "--options", config], {
    cwd: dir,
    encoding: "utf8",
    timeout: 120_000
  })
  return { status: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}`, error: r.error }
}

let failed = false
try {
  const ok = run("documented", variants.documented)
  if (ok.status !== 0) {
    failed = true
    console.error(
      `docs validation proof: a fully documented entry failed TypeDoc (status ${ok.status}):\n${ok.output}${ok.error ?? ""}`
    )
  }
  const bad = run("undocumented", variants.undocumented)
  if (bad.status === 0 || !/undocumentedExport[^\n]*does not have any documentation/.test(bad.output)) {
    failed = true
    console.error(
      `docs validation proof: an undocumented public export did not fail TypeDoc (status ${bad.status}):\n${bad.output}${bad.error ?? ""}`
    )
  }
  if (!failed)
    console.log(
      "docs validation proof: documented entry passes; undocumented export `undocumentedExport` fails TypeDoc as expected"
    )
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
