import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import { main } from "../src/index.js"
import { richModule, withCustomSection } from "./fixtures.js"

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

    const sign = await cli(
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
    expect(sign).toMatchObject({ code: 0, err: "" })
    const signed = new Uint8Array(readFileSync(join(dir, "rich.signed.wasm")))
    expect(wasm.validate(signed)).toBe(true)

    const ok = await cli(
      "verify",
      "rich.signed.wasm",
      "--trust",
      "key.pub.json",
      "--name",
      "rich",
      "--version",
      "1.0.0"
    )
    expect(ok.code).toBe(0)
    expect(ok.out).toContain(`valid: rich@1.0.0 signed by ${key.keyId}`)

    // the secret key file works as a trust file too (only its public key is used), as does bare hex
    writeFileSync(join(dir, "pub.hex"), `${pub.publicKey}\n`)
    for (const trust of ["key.json", "pub.hex"]) {
      expect(
        (await cli("verify", "rich.signed.wasm", "--trust", trust, "--name", "rich", "--version", "1.0.0")).code
      ).toBe(0)
    }

    const wrongVersion = await cli(
      "verify",
      "rich.signed.wasm",
      "--trust",
      "key.pub.json",
      "--name",
      "rich",
      "--version",
      "2.0.0"
    )
    expect(wrongVersion.code).toBe(1)
    expect(wrongVersion.err).toMatch(/metadata mismatch/)

    const tampered = Uint8Array.from(signed)
    tampered[60] = tampered[60]! ^ 0x01 // inside the import section
    writeFileSync(join(dir, "rich.tampered.wasm"), tampered)
    const bad = await cli(
      "verify",
      "rich.tampered.wasm",
      "--trust",
      "key.pub.json",
      "--name",
      "rich",
      "--version",
      "1.0.0"
    )
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/^invalid: rich\.tampered\.wasm: (tampered|malformed)/)
    expect(bad.err.split("\n")).toHaveLength(1)

    const unsigned = await cli("verify", "rich.wasm", "--trust", "key.pub.json", "--name", "rich", "--version", "1.0.0")
    expect(unsigned).toMatchObject({ code: 1, err: "invalid: rich.wasm: unsigned" })
    const allowed = await cli(
      "verify",
      "rich.wasm",
      "--trust",
      "key.pub.json",
      "--name",
      "rich",
      "--version",
      "1.0.0",
      "--allow-unsigned"
    )
    expect(allowed.code).toBe(0)

    const other = await cli("keygen", "--out", "other.json")
    expect(other.code).toBe(0)
    const untrusted = await cli(
      "verify",
      "rich.signed.wasm",
      "--trust",
      "other.pub.json",
      "--name",
      "rich",
      "--version",
      "1.0.0"
    )
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
    expect(untrustedInspect.code).toBe(1)
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
    expect(report.imports[0]).toMatchObject({
      module: "env",
      name: "log",
      type: { kind: "function", params: ["i32"], results: [] }
    })
    expect(report.memories[0]).toMatchObject({ minPages: 1, maxPages: 16 })
    expect(report.signature).toMatchObject({ status: "signed", keyId: key.keyId, name: "rich", version: "1.0.0" })
    expect(report.customSections).toEqual([{ name: "agent-runtime.signature", size: expect.any(Number) }])
  })

  it("detached signatures: sign --detached, verify --sig, inspect --sig", async () => {
    expect((await cli("keygen", "--out", "det.json")).code).toBe(0)
    const sign = await cli(
      "sign",
      "rich.wasm",
      "--key",
      "det.json",
      "--name",
      "rich",
      "--version",
      "1.0.0",
      "--detached",
      "rich.sig"
    )
    expect(sign.code).toBe(0)
    expect(existsSync(join(dir, "rich.signed.wasm.sig"))).toBe(false)
    const sig = JSON.parse(readFileSync(join(dir, "rich.sig"), "utf8"))
    expect(sig).toMatchObject({ v: 1, alg: "ed25519", name: "rich", version: "1.0.0" })
    const ok = await cli(
      "verify",
      "rich.wasm",
      "--trust",
      "det.pub.json",
      "--sig",
      "rich.sig",
      "--name",
      "rich",
      "--version",
      "1.0.0"
    )
    expect(ok.code).toBe(0)
    const inspect = await cli("inspect", "rich.wasm", "--sig", "rich.sig", "--trust", "det.pub.json")
    expect(inspect.out).toContain("(detached); trusted")
  })

  it("sign defaults --out to <in>.signed.wasm and re-signing keeps one signature", async () => {
    expect((await cli("keygen", "--out", "k2.json")).code).toBe(0)
    writeFileSync(join(dir, "copy.wasm"), richModule())
    expect((await cli("sign", "copy.wasm", "--key", "k2.json", "--name", "c", "--version", "1")).code).toBe(0)
    expect(existsSync(join(dir, "copy.signed.wasm"))).toBe(true)
    expect(
      (
        await cli(
          "sign",
          "copy.signed.wasm",
          "--key",
          "k2.json",
          "--name",
          "c",
          "--version",
          "2",
          "--out",
          "copy2.wasm"
        )
      ).code
    ).toBe(0)
    const report = JSON.parse((await cli("inspect", "copy2.wasm", "--json")).out)
    expect(report.customSections).toHaveLength(1)
    expect(report.signature.version).toBe("2")
  })

  it("inspect: exit 0 for any well-formed module; with --trust, 1 unless a trusted key signed it (like verify)", async () => {
    expect((await cli("keygen", "--out", "ix.json")).code).toBe(0)
    expect((await cli("keygen", "--out", "iy.json")).code).toBe(0)
    const sign = await cli(
      "sign",
      "rich.wasm",
      "--key",
      "ix.json",
      "--name",
      "ix",
      "--version",
      "1",
      "--out",
      "ix.wasm",
      "--detached",
      "ix.sig"
    )
    expect(sign.code).toBe(0)
    const signed = new Uint8Array(readFileSync(join(dir, "ix.wasm")))
    // tampered: i32.add → i32.sub in the code section (still a valid module, a different hash)
    const addAt = richModule().length - 2
    expect(signed[addAt]).toBe(0x6a)
    const tampered = Uint8Array.from(signed)
    tampered[addAt] = 0x6b
    expect(wasm.validate(tampered)).toBe(true)
    writeFileSync(join(dir, "ix.tampered.wasm"), tampered)
    // malformed: an embedded signature section whose payload is not a signature
    writeFileSync(
      join(dir, "ix.malformed.wasm"),
      withCustomSection(richModule(), "agent-runtime.signature", "not json")
    )
    // bad signature: a well-formed detached signature whose first ed25519 byte is changed
    const sig = JSON.parse(readFileSync(join(dir, "ix.sig"), "utf8"))
    writeFileSync(
      join(dir, "ix.bad.sig"),
      JSON.stringify({ ...sig, sig: `${sig.sig[0] === "A" ? "B" : "A"}${sig.sig.slice(1)}` })
    )

    type Case = { argv: Array<string>; code: number; status: string; reason?: RegExp }
    const cases: Array<Case> = [
      // without --trust: inspect reports, exit 0 — whatever the signature status
      { argv: ["rich.wasm"], code: 0, status: "unsigned" },
      { argv: ["ix.wasm"], code: 0, status: "signed" },
      { argv: ["ix.tampered.wasm"], code: 0, status: "invalid", reason: /^tampered: / },
      { argv: ["ix.malformed.wasm"], code: 0, status: "invalid", reason: /^malformed signature: / },
      { argv: ["rich.wasm", "--sig", "ix.bad.sig"], code: 0, status: "signed" }, // needs a key to find out
      // with --trust: exit 1 and one line on stderr unless a trusted key signed it
      { argv: ["ix.wasm", "--trust", "ix.pub.json"], code: 0, status: "signed" },
      { argv: ["rich.wasm", "--sig", "ix.sig", "--trust", "ix.pub.json"], code: 0, status: "signed" },
      { argv: ["rich.wasm", "--trust", "ix.pub.json"], code: 1, status: "unsigned", reason: /^unsigned$/ },
      {
        argv: ["ix.wasm", "--trust", "iy.pub.json"],
        code: 1,
        status: "signed",
        reason: /^untrusted key [0-9a-f]{16}$/
      },
      { argv: ["ix.tampered.wasm", "--trust", "ix.pub.json"], code: 1, status: "invalid", reason: /^tampered: / },
      {
        argv: ["ix.malformed.wasm", "--trust", "ix.pub.json"],
        code: 1,
        status: "invalid",
        reason: /^malformed signature: /
      },
      {
        argv: ["rich.wasm", "--sig", "ix.bad.sig", "--trust", "ix.pub.json"],
        code: 1,
        status: "signed",
        reason: /^bad signature$/
      }
    ]
    for (const c of cases) {
      const label = c.argv.join(" ")
      const file = c.argv[0]!
      const text = await cli("inspect", ...c.argv)
      const json = await cli("inspect", ...c.argv, "--json")
      expect([text.code, json.code], label).toEqual([c.code, c.code])
      expect(text.out, label).toContain("exports    3") // the report is printed either way
      const signature = JSON.parse(json.out).signature
      expect(signature.status, label).toBe(c.status)
      expect(signature.trusted, label).toBe(c.argv.includes("--trust") ? c.code === 0 : undefined)
      if (c.reason === undefined) expect(signature.reason, label).toBeUndefined()
      else expect(signature.reason, label).toMatch(c.reason)
      if (c.code === 0) {
        expect([text.err, json.err], label).toEqual(["", ""])
      } else {
        for (const r of [text, json]) {
          expect(r.err.split("\n"), label).toHaveLength(1)
          expect(r.err.slice(`invalid: ${file}: `.length), label).toMatch(c.reason!)
          expect(r.err.startsWith(`invalid: ${file}: `), label).toBe(true)
        }
      }
    }
    // a malformed module stays exit 2 with the byte offset, with or without --trust
    writeFileSync(join(dir, "ix.text.wasm"), "not wasm at all")
    for (const extra of [[], ["--trust", "ix.pub.json"]]) {
      const r = await cli("inspect", "ix.text.wasm", ...extra)
      expect(r.code).toBe(2)
      expect(r.err).toMatch(/^error: ix\.text\.wasm: not a valid WebAssembly module: .* at byte \d+$/)
    }
  })

  it("sign refuses to overwrite an existing output without --force (exit 2, nothing written)", async () => {
    expect((await cli("keygen", "--out", "sf.json")).code).toBe(0)
    writeFileSync(join(dir, "sf.wasm"), richModule())
    const args = ["sign", "sf.wasm", "--key", "sf.json", "--name", "sf", "--version", "1"]
    expect((await cli(...args)).code).toBe(0)
    const first = readFileSync(join(dir, "sf.signed.wasm"))

    const again = await cli(...args, "--version", "2")
    expect(again).toEqual({
      code: 2,
      out: "",
      err: "error: sf.signed.wasm exists; not overwriting an output file (use --force)"
    })
    expect(readFileSync(join(dir, "sf.signed.wasm"))).toEqual(first)

    // signing in place is an overwrite too
    const inPlace = await cli(...args, "--out", "sf.wasm")
    expect(inPlace.code).toBe(2)
    expect(readFileSync(join(dir, "sf.wasm"))).toEqual(Buffer.from(richModule()))

    // a detached .sig that exists: refused, and the (new) embedded output is not written either
    writeFileSync(join(dir, "sf.sig"), "keep me")
    const detached = await cli(...args, "--detached", "sf.sig", "--out", "sf.new.wasm")
    expect(detached).toMatchObject({
      code: 2,
      err: "error: sf.sig exists; not overwriting an output file (use --force)"
    })
    expect(readFileSync(join(dir, "sf.sig"), "utf8")).toBe("keep me")
    expect(existsSync(join(dir, "sf.new.wasm"))).toBe(false)

    const forced = await cli(...args, "--version", "2", "--force")
    expect(forced).toMatchObject({ code: 0, err: "" })
    expect(JSON.parse((await cli("inspect", "sf.signed.wasm", "--json")).out).signature.version).toBe("2")
    expect((await cli(...args, "--detached", "sf.sig", "--force")).code).toBe(0)
    expect(JSON.parse(readFileSync(join(dir, "sf.sig"), "utf8"))).toMatchObject({ name: "sf", version: "1" })
  })

  it("bad input is one line on stderr and a non-zero exit, never a stack trace", async () => {
    writeFileSync(join(dir, "text.wasm"), "hello, not wasm")
    writeFileSync(join(dir, "truncated.wasm"), richModule().subarray(0, 30))
    writeFileSync(join(dir, "garbage.json"), "{nope")
    const cases: Array<[Array<string>, RegExp]> = [
      [[], /^DESCRIPTION\n[^]*USAGE\n  agent-runtime <subcommand>/], // the help of effect/cli (was "usage: agent-runtime")
      [["frobnicate"], /^error: unknown command "frobnicate"/],
      [["inspect"], /^error: missing <file.wasm>/],
      [["inspect", "missing.wasm"], /^error: cannot read missing\.wasm: no such file$/],
      [["inspect", "text.wasm"], /^error: text\.wasm: not a valid WebAssembly module: .* at byte \d+$/],
      [["inspect", "truncated.wasm"], /^error: truncated\.wasm: not a valid WebAssembly module: .* at byte \d+$/],
      [["inspect", "rich.wasm", "--bogus"], /^error: Unknown option '--bogus'/],
      [["sign", "rich.wasm", "--key", "key.json", "--name", "x"], /^error: missing --version$/],
      [
        ["sign", "rich.wasm", "--key", "garbage.json", "--name", "x", "--version", "1"],
        /^error: garbage\.json: not valid JSON$/
      ],
      [
        ["sign", "rich.wasm", "--key", "key.pub.json", "--name", "x", "--version", "1"],
        /^error: key\.pub\.json: secretKey/
      ],
      [["sign", "text.wasm", "--key", "key.json", "--name", "x", "--version", "1"], /not a valid WebAssembly module/],
      [["verify", "rich.wasm", "--name", "x", "--version", "1"], /^error: missing --trust$/],
      [
        ["verify", "rich.wasm", "--trust", "garbage.json", "--name", "x", "--version", "1"],
        /^error: garbage\.json: not valid JSON$/
      ],
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
    expect(
      run("sign", "rich.wasm", "--key", "proc.json", "--name", "p", "--version", "1", "--out", "p.wasm").status
    ).toBe(0)
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
