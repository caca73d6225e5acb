import { describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { main } from "../src/index.js"
import { richModule } from "./fixtures.js"

const dir = mkdtempSync(join(tmpdir(), "agent-runtime-bundle-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const cli = async (...argv: Array<string>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), cwd: dir })
  return { code, out: out.join("\n"), err: err.join("\n") }
}

const MiB = 1_048_576

describe("agent-runtime bundle", () => {
  it("verifies, rewrites and writes the manifest, the variants, the originals and bundle.js", async () => {
    writeFileSync(join(dir, "rich.wasm"), richModule())
    expect((await cli("keygen", "--out", "key.json")).code).toBe(0)
    expect(
      (
        await cli(
          "sign",
          "rich.wasm",
          "--key",
          "key.json",
          "--name",
          "rich",
          "--version",
          "1.0.0",
          "--out",
          "rich.signed.wasm"
        )
      ).code
    ).toBe(0)
    writeFileSync(
      join(dir, "bundle.json"),
      JSON.stringify({
        modules: [{ name: "rich", version: "1.0.0", file: "rich.signed.wasm" }],
        agents: [{ type: "rich", module: "rich", memoryLimit: MiB, fuel: 5000 }],
        variants: [{ module: "rich", memoryLimit: 2 * MiB }],
        trust: ["key.pub.json"]
      })
    )
    const r = await cli("bundle", "bundle.json", "--out", "out")
    expect(r.err).toBe("")
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/wrote out: 1 modules, 3 variants, 1 agent types/)
    const manifest = JSON.parse(readFileSync(join(dir, "out", "manifest.json"), "utf8"))
    const module = manifest.modules[0]
    expect(module.signature.status).toBe("verified")

    expect(module.variants.map((v: { key: string }) => v.key.slice(65))).toEqual([
      "",
      "cap=16|fuel=5000|state",
      "cap=32|fuel=-|state"
    ])
    for (const v of module.variants) expect(existsSync(join(dir, "out", v.file))).toBe(true)
    expect(existsSync(join(dir, "out", module.file))).toBe(true)
    const js = readFileSync(join(dir, "out", "bundle.js"), "utf8")
    for (const v of module.variants) expect(js).toContain(`import m`)
    expect(js).toContain(`"./${module.variants[1].file}"`)
    expect(js).toContain(`"./${module.file}"`)
    expect(js).toMatch(/export const bundle = \{/)
    expect(existsSync(join(dir, "out", "bundle.d.ts"))).toBe(true)
  })

  it("an untrusted or unsigned module fails with exit 1 and writes nothing", async () => {
    writeFileSync(
      join(dir, "unsigned.json"),
      JSON.stringify({
        modules: [{ name: "rich", version: "1.0.0", file: "rich.wasm" }],
        agents: [],
        trust: ["key.pub.json"]
      })
    )
    const r = await cli("bundle", "unsigned.json", "--out", "out2")
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^invalid: rich@1.0.0: unsigned/)
    expect(existsSync(join(dir, "out2"))).toBe(false)
    // --allow-unsigned admits it
    const ok = await cli("bundle", "unsigned.json", "--out", "out3", "--allow-unsigned")
    expect(ok.code).toBe(0)
    expect(JSON.parse(readFileSync(join(dir, "out3", "manifest.json"), "utf8")).modules[0].signature).toEqual({
      status: "unsigned-allowed"
    })
  })

  it("bad usage and bad configs exit 2 with one line", async () => {
    expect((await cli("bundle")).err).toBe("error: missing <config.json>")
    expect((await cli("bundle", "bundle.json")).err).toBe("error: missing --out <dir>")
    expect((await cli("bundle", "nope.json", "--out", "x")).err).toMatch(/cannot read .*nope.json: no such file/)
    writeFileSync(join(dir, "bad.json"), "{")
    expect((await cli("bundle", "bad.json", "--out", "x")).err).toBe("error: bad.json: not valid JSON")
    writeFileSync(
      join(dir, "bad2.json"),
      JSON.stringify({
        modules: [{ name: "rich", version: "1.0.0", file: "rich.signed.wasm" }],
        agents: [{ type: "r", module: "rich", memoryLimit: 10 }],
        trust: ["key.pub.json"]
      })
    )
    const low = await cli("bundle", "bad2.json", "--out", "x")
    expect(low.code).toBe(2)
    expect(low.err).toMatch(/memory limit too low/)
    writeFileSync(join(dir, "bad3.json"), JSON.stringify({ modules: [{ name: "rich" }] }))
    expect((await cli("bundle", "bad3.json", "--out", "x")).err).toBe(
      'error: modules[0]: "version" must be a non-empty string'
    )
    writeFileSync(join(dir, "bad4.json"), JSON.stringify({ modules: [] }))
    expect((await cli("bundle", "bad4.json", "--out", "x")).err).toMatch(/no trust store/)
  })
})
