import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import * as Layer from "effect/Layer"
import { AdapterError, findEngineExport, loadAdapter } from "../src/Adapter.js"
import { withEngine } from "../src/BenchRuntime.js"
import type { BenchResult } from "../src/Report.js"
import { spawnSuite } from "../src/SpawnSuite.js"
import { checkShape } from "./support.js"

const here = dirname(fileURLToPath(import.meta.url))
const pkg = resolve(here, "..")
/** The README's tiny third-party adapter (plain JS over the raw WebAssembly API). */
const example = resolve(pkg, "../../apps/examples/third-party-adapter/my-engine.mjs")

/** Runs `src/main.ts` as `pnpm bench` does; the child is killed if the test ends first. */
const bench = (
  args: ReadonlyArray<string>,
  cwd = pkg
): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      ["--conditions=@agent-runtime/source", "bin/bundled.mjs", "src/main.ts", ...args],
      {
        cwd: pkg,
        env: { ...process.env, INIT_CWD: cwd },
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += String(d)))
    child.stderr.on("data", (d) => (stderr += String(d)))
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000)
    child.on("error", fail)
    child.on("close", (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr })
    })
  })

describe("bench on your own adapter", () => {
  it("loads the example's MyEngine and runs the spawn suite on it (smoke), raw baselines in the same result", async () => {
    const engine = await loadAdapter(example)
    expect(engine.name).toBe(`MyEngine (${example})`)
    expect(engine.platform).toBe("Native")
    expect(engine.capabilities.workers).toBe(false)
    const counter = (engine.exports["MyEngine"] as { compiledModules: () => number }).compiledModules
    const before = counter()
    const result = await withEngine(engine.layer, () => spawnSuite({ quick: true, smoke: true }))
    checkShape(result)
    expect(counter()).toBeGreaterThan(before) // the runtime compiled the agents with the adapter, not the native engine
    const names = result.rows.map((r) => r.name)
    expect(names).toContain("raw new WebAssembly.Instance (1 page)")
    expect(result.rows.find((r) => r.name === "spawnAgent (1 page)")?.baseline).toBe(
      "raw new WebAssembly.Instance (1 page)"
    )
  }, 60_000)

  it("picks default, layer, or the only engine-like export; refuses none, several, and a Layer without WasmEngine", async () => {
    const layer = Layer.empty
    expect(findEngineExport({ default: layer, other: { layer } }).exportName).toBe("default")
    expect(findEngineExport({ layer, other: { layer } }).exportName).toBe("layer")
    expect(findEngineExport({ helper: 1, MyEngine: { layer } }).exportName).toBe("MyEngine")
    expect(findEngineExport({ A: { layer }, B: layer }, "B").exportName).toBe("B")
    expect(() => findEngineExport({ helper: 1 })).toThrow(/no export is a Layer/)
    expect(() => findEngineExport({ A: { layer }, B: layer })).toThrow(/several exports .*--adapter-export/)
    expect(() => findEngineExport({ A: { layer } }, "B")).toThrow(AdapterError)
    await expect(loadAdapter("test/fixtures/not-an-engine.mjs", { cwd: pkg })).rejects.toThrow(
      /does not provide WasmEngine/
    )
    await expect(loadAdapter("no-such-adapter.mjs", { cwd: pkg })).rejects.toThrow(/cannot import/)
  })

  it("`bench --adapter <path> --suite=spawn --quick` runs on the adapter, path relative to INIT_CWD", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-adapter-"))
    try {
      const out = join(dir, "result.json")
      const run = await bench(
        [
          "--",
          "--adapter",
          "apps/examples/third-party-adapter/my-engine.mjs",
          "--suite=spawn",
          "--quick",
          `--out=${out}`
        ],
        resolve(pkg, "../..")
      )
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toMatch(/engine: MyEngine \(apps\/examples\/third-party-adapter\/my-engine\.mjs\), Native/)
      const result = JSON.parse(readFileSync(out, "utf8")) as BenchResult & { engine: { name: string; path: string } }
      expect(result.mode).toBe("quick")
      expect(result.engine.path).toBe(example)
      expect(new Set(result.rows.map((r) => r.suite))).toEqual(new Set(["spawn"]))
      const ours = result.rows.find((r) => r.name === "spawnAgent (1 page)")
      expect(ours?.baseline).toBe("raw new WebAssembly.Instance (1 page)")
      expect(ours?.ratio).toBeGreaterThan(0)
      expect(result.notes.filter((n) => n.note.startsWith("suite failed"))).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it("refuses a suite that measures engines of its own, before running anything", async () => {
    const run = await bench(["--adapter", example, "--suite=spawn,worker"])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/worker measure engines of their own/)
  }, 60_000)
})
