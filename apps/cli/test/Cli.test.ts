import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import { main } from "../src/index.js"
import { richModule } from "./fixtures.js"

/** The host's `WebAssembly` (not in @types/node 20). */
const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly

const dir = mkdtempSync(join(tmpdir(), "agent-runtime-cli-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
writeFileSync(join(dir, "rich.wasm"), richModule())

/** Runs the CLI in `dir`, capturing stdout and stderr. */
const cli = async (...argv: Array<string>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), cwd: dir })
  return { code, out: out.join("\n"), err: err.join("\n") }
}

describe("agent-runtime (main)", () => {
  it("keygen → sign → verify → tamper → verify fails → inspect", async () => {
    const keygen = await cli("keygen", "--out", "key.json")
    expect(keygen.code).toBe(0)
    const key = JSON.parse(readFileSync(join(dir, "key.json"), "utf8"))
    const pub = JSON.parse(readFileSync(join(dir, "key.pub.json"), "utf8"))
    expect(Object.keys(key).sort()).toEqual(["keyId", "publicKey", "secretKey"])
    expect(pub).toEqual({ keyId: key.keyId, publicKey: key.publicKey })
    expect(statSync(join(dir, "key.json")).mode & 0o077).toBe(0)
    expect(keygen.out).toContain(key.keyId)

    const sign = await cli("sign", "rich.wasm", "--key", "key.json", "--name", "rich", "--version", "1.0.0", "--out", "rich.signed.wasm")
    expect(sign).toMatchObject({ code: 0, err: "" })
    const signed = new Uint8Array(readFileSync(join(dir, "rich.signed.wasm")))
    expect(wasm.validate(signed)).toBe(true)

    const ok = await cli("verify", "rich.signed.wasm", "--trust", "key.pub.json", "--name", "rich", "--version", "1.0.0")
    expect(ok.code).toBe(0)
    expect(ok.out).toContain(`valid: rich@1.0.0 signed by ${key.keyId}`)

    // the secret key file works as a trust file too (only its public key is used), as does bare hex
    writeFileSync(join(dir, "pub.hex"), `${pub.publicKey}\n`)
    for (const trust of ["key.json", "pub.hex"]) {
      expect((await cli("verify", "rich.signed.wasm", "--trust", trust, "--name", "rich", "--version", "1.0.0")).code).toBe(0)
    }

    const wrongVersion = await cli("verify", "rich.signed.wasm", "--trust", "key.pub.json", "--name", "rich", "--version", "2.0.0")
    expect(wrongVersion.code).toBe(1)
    expect(wrongVersion.err).toMatch(/metadata mismatch/)

    const tampered = Uint8Array.from(signed)
    tampered[60] = tampered[60]! ^ 0x01 // inside the import section
    writeFileSync(join(dir, "rich.tampered.wasm"), tampered)
    const bad = await cli("verify", "rich.tampered.wasm", "--trust", "key.pub.json", "--name", "rich", "--version", "1.0.0")
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/^invalid: rich\.tampered\.wasm: (tampered|malformed)/)
    expect(bad.err.split("\n")).toHaveLength(1)

    const unsigned = await cli("verify", "rich.wasm", "--trust", "key.pub.json", "--name", "rich", "--version", "1.0.0")
    expect(unsigned).toMatchObject({ code: 1, err: "invalid: rich.wasm: unsigned" })
    const allowed = await cli("verify", "rich.wasm", "--trust", "key.pub.json", "--name", "rich", "--version", "1.0.0", "--allow-unsigned")
    expect(allowed.code).toBe(0)

    const other = await cli("keygen", "--out", "other.json")
    expect(other.code).toBe(0)
    const untrusted = await cli("verify", "rich.signed.wasm", "--trust", "other.pub.json", "--name", "rich", "--version", "1.0.0")
    expect(untrusted.code).toBe(1)
    expect(untrusted.err).toContain(`untrusted key ${key.keyId}`)

    const text = await cli("inspect", "rich.signed.wasm", "--trust", "key.pub.json")
    expect(text.code).toBe(0)
    for (const line of [
      "env.log: func log(i32)",
      "env.table: table funcref 1..∞",
      "env.g: global mut i32",
      "func add(i32, i32) -> i32",
      "memory 1..16 pages (64 KiB each)",
      "global mut i64",
      `signed by ${key.keyId} as rich@1.0.0 (embedded); trusted (key.pub.json)`,
      "agent-runtime.signature"
    ]) {
      expect(text.out).toContain(line)
    }
    expect(text.out).toMatch(/hash {7}[0-9a-f]{64}/)

    const untrustedInspect = await cli("inspect", "rich.signed.wasm", "--trust", "other.pub.json")
    expect(untrustedInspect.out).toContain("NOT trusted: untrusted key")
    expect((await cli("inspect", "rich.signed.wasm")).out).toContain("trust not checked")
    expect((await cli("inspect", "rich.wasm")).out).toMatch(/signature {2}unsigned/)

    const json = await cli("inspect", "rich.signed.wasm", "--json")
    expect(json.code).toBe(0)
    const report = JSON.parse(json.out)
    expect(report.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(report.hash).toBe(JSON.parse((await cli("inspect", "rich.wasm", "--json")).out).hash)
    expect(report.exports.map((e: { text: string }) => e.text)).toEqual([
      "func add(i32, i32) -> i32",
      "memory 1..16 pages (64 KiB each)",
      "global mut i64"
    ])
    expect(report.imports[0]).toMatchObject({ module: "env", name: "log", type: { kind: "function", params: ["i32"], results: [] } })
    expect(report.memories[0]).toMatchObject({ minPages: 1, maxPages: 16 })
    expect(report.signature).toMatchObject({ status: "signed", keyId: key.keyId, name: "rich", version: "1.0.0" })
    expect(report.customSections).toEqual([{ name: "agent-runtime.signature", size: expect.any(Number) }])
  })

  it("detached signatures: sign --detached, verify --sig, inspect --sig", async () => {
    expect((await cli("keygen", "--out", "det.json")).code).toBe(0)
    const sign = await cli("sign", "rich.wasm", "--key", "det.json", "--name", "rich", "--version", "1.0.0", "--detached", "rich.sig")
    expect(sign.code).toBe(0)
    expect(existsSync(join(dir, "rich.signed.wasm.sig"))).toBe(false)
    const sig = JSON.parse(readFileSync(join(dir, "rich.sig"), "utf8"))
    expect(sig).toMatchObject({ v: 1, alg: "ed25519", name: "rich", version: "1.0.0" })
    const ok = await cli("verify", "rich.wasm", "--trust", "det.pub.json", "--sig", "rich.sig", "--name", "rich", "--version", "1.0.0")
    expect(ok.code).toBe(0)
    const inspect = await cli("inspect", "rich.wasm", "--sig", "rich.sig", "--trust", "det.pub.json")
    expect(inspect.out).toContain("(detached); trusted")
  })

  it("sign defaults --out to <in>.signed.wasm and re-signing keeps one signature", async () => {
    expect((await cli("keygen", "--out", "k2.json")).code).toBe(0)
    writeFileSync(join(dir, "copy.wasm"), richModule())
    expect((await cli("sign", "copy.wasm", "--key", "k2.json", "--name", "c", "--version", "1")).code).toBe(0)
    expect(existsSync(join(dir, "copy.signed.wasm"))).toBe(true)
    expect((await cli("sign", "copy.signed.wasm", "--key", "k2.json", "--name", "c", "--version", "2", "--out", "copy2.wasm")).code).toBe(0)
    const report = JSON.parse((await cli("inspect", "copy2.wasm", "--json")).out)
    expect(report.customSections).toHaveLength(1)
    expect(report.signature.version).toBe("2")
  })

  it("bad input is one line on stderr and a non-zero exit, never a stack trace", async () => {
    writeFileSync(join(dir, "text.wasm"), "hello, not wasm")
    writeFileSync(join(dir, "truncated.wasm"), richModule().subarray(0, 30))
    writeFileSync(join(dir, "garbage.json"), "{nope")
    const cases: Array<[Array<string>, RegExp]> = [
      [[], /^usage: agent-runtime/],
      [["frobnicate"], /^error: unknown command "frobnicate"/],
      [["inspect"], /^error: missing <file.wasm>/],
      [["inspect", "missing.wasm"], /^error: cannot read missing\.wasm: no such file$/],
      [["inspect", "text.wasm"], /^error: text\.wasm: not a valid WebAssembly module: .* at byte \d+$/],
      [["inspect", "truncated.wasm"], /^error: truncated\.wasm: not a valid WebAssembly module: .* at byte \d+$/],
      [["inspect", "rich.wasm", "--bogus"], /^error: Unknown option '--bogus'/],
      [["sign", "rich.wasm", "--key", "key.json", "--name", "x"], /^error: missing --version$/],
      [["sign", "rich.wasm", "--key", "garbage.json", "--name", "x", "--version", "1"], /^error: garbage\.json: not valid JSON$/],
      [["sign", "rich.wasm", "--key", "key.pub.json", "--name", "x", "--version", "1"], /^error: key\.pub\.json: secretKey/],
      [["sign", "text.wasm", "--key", "key.json", "--name", "x", "--version", "1"], /not a valid WebAssembly module/],
      [["verify", "rich.wasm", "--name", "x", "--version", "1"], /^error: missing --trust$/],
      [["verify", "rich.wasm", "--trust", "garbage.json", "--name", "x", "--version", "1"], /^error: garbage\.json: not valid JSON$/],
      [["keygen", "--out", "key.json"], /^error: key\.json exists/]
    ]
    for (const [argv, pattern] of cases) {
      const r = await cli(...argv)
      expect(r.code, argv.join(" ")).toBeGreaterThan(argv.length === 0 ? 1 : 0)
      expect(r.err, argv.join(" ")).toMatch(pattern)
      if (argv.length > 0) expect(r.err.split("\n"), argv.join(" ")).toHaveLength(1)
      expect(r.err).not.toMatch(/\n\s+at /)
    }
  })
})

describe("agent-runtime (subprocess)", () => {
  it("the bin script runs the real process: keygen, sign, verify, inspect, a bad file", () => {
    const bin = fileURLToPath(new URL("../bin/agent-runtime.mjs", import.meta.url))
    const run = (...args: Array<string>) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: "utf8" })
    expect(run("keygen", "--out", "proc.json").status).toBe(0)
    expect(run("sign", "rich.wasm", "--key", "proc.json", "--name", "p", "--version", "1", "--out", "p.wasm").status).toBe(0)
    const ok = run("verify", "p.wasm", "--trust", "proc.pub.json", "--name", "p", "--version", "1")
    expect(ok.status).toBe(0)
    expect(ok.stdout).toMatch(/^valid: p@1 signed by [0-9a-f]{16}/)
    const bad = run("verify", "p.wasm", "--trust", "proc.pub.json", "--name", "p", "--version", "2")
    expect(bad.status).toBe(1)
    expect(bad.stderr).toMatch(/^invalid: p\.wasm: metadata mismatch/)
    const missing = run("inspect", "nope.wasm")
    expect(missing.status).toBe(2)
    expect(missing.stderr).toBe("error: cannot read nope.wasm: no such file\n")
    expect(run("inspect", "p.wasm").stdout).toContain("func add(i32, i32) -> i32")
  }, 180_000) // several cold tsx starts; slow when the 2-core CI machine is busy
})
