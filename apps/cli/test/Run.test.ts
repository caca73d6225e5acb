import { agentPath, buildDir, unsignedAgentPath } from "@agent-runtime/agents"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import { main, parseDuration, parseSize, parseValue } from "../src/index.js"

const dir = mkdtempSync(join(tmpdir(), "agent-runtime-run-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const testKey = fileURLToPath(new URL("../../../packages/signing/test-keys/test-only-ed25519.json", import.meta.url))

const cli = async (...argv: Array<string>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), cwd: dir })
  return { code, out: out.join("\n"), err: err.join("\n") }
}

describe("agent-runtime run: parsing", () => {
  it("sizes, durations and values by type", () => {
    expect([
      parseSize("16MiB"),
      parseSize("512KiB"),
      parseSize("1048576"),
      parseSize("2m"),
      parseSize("1MB"),
      parseSize("x")
    ]).toEqual([16 * 1_048_576, 512 * 1024, 1_048_576, 2 * 1_048_576, 1_000_000, undefined])
    expect([
      parseDuration("200ms"),
      parseDuration("2s"),
      parseDuration("150"),
      parseDuration("0"),
      parseDuration("fast")
    ]).toEqual([200, 2000, 150, undefined, undefined])
    expect(parseValue("i32", "-5")).toBe(-5)
    expect(parseValue("i64", "9007199254740993")).toBe(9007199254740993n)
    expect(parseValue("f64", "-inf")).toBe(-Infinity)
    expect(parseValue("i32", "abc")).toBe("abc") // left as text: the runtime refuses it (SignatureMismatch)
  })
})

describe("agent-runtime run (native engine)", () => {
  const counter = agentPath("counter")

  it("prints the typed result; i64 as bigint text; several results", async () => {
    expect(await cli("run", counter, "add", "41")).toEqual({ code: 0, out: "[41]", err: "" })
    expect((await cli("run", counter, "add_i64", "9007199254740993", "2")).out).toBe("[9007199254740995]")
    expect((await cli("run", agentPath("multi"), "divmod", "17", "5")).out).toBe("[3, 2]")
    const json = JSON.parse((await cli("run", counter, "add_i64", "1", "-3", "--json")).out)
    expect(json).toEqual({ ok: true, function: "add_i64", results: ["-2"], types: ["i64"], exitCode: 0 })
  })

  it("typed failures: one line `<Tag>: message` and their exit codes", async () => {
    const cases: Array<[Array<string>, number, RegExp]> = [
      [[agentPath("trapper"), "divide", "1", "0"], 4, /^Trap: divide trapped: .*divi/i],
      [[agentPath("looper"), "spin", "--fuel", "100000"], 5, /^FuelExhausted: spin ran out of fuel \(100000 units\)$/],
      [[counter, "add", "abc"], 3, /^SignatureMismatch: add: argument 0: expected i32/],
      [[counter, "add", "1", "2"], 3, /^SignatureMismatch: add: expected 1 argument/],
      [[counter, "nope"], 3, /^FunctionNotFound: /],
      [[counter, "add", "1", "--memory", "64KiB"], 2, /^InvalidConfig: .*memory limit too low/]
    ]
    for (const [argv, code, pattern] of cases) {
      const r = await cli("run", ...argv)
      expect({ code: r.code, out: r.out }, argv.join(" ")).toEqual({ code, out: "" })
      expect(r.err, argv.join(" ")).toMatch(pattern)
      expect(r.err.split("\n"), argv.join(" ")).toHaveLength(1)
    }
    const json = JSON.parse((await cli("run", agentPath("looper"), "spin", "--fuel", "5000", "--json")).out)
    expect(json).toMatchObject({ ok: false, error: { _tag: "FuelExhausted", fuel: 5000 }, exitCode: 5 })
  })

  it("--trust verifies first: the test key admits the signed fixture; unsigned or untrusted → InvalidSignature, exit 1", async () => {
    expect((await cli("run", counter, "add", "2", "--trust", testKey)).out).toBe("[2]")
    const unsigned = await cli("run", unsignedAgentPath("counter"), "add", "2", "--trust", testKey)
    expect(unsigned.code).toBe(1)
    expect(unsigned.err).toMatch(/^InvalidSignature: .*unsigned/)
    expect((await cli("keygen", "--out", "other.json")).code).toBe(0)
    const untrusted = await cli("run", counter, "add", "2", "--trust", "other.pub.json")
    expect(untrusted.code).toBe(1)
    expect(untrusted.err).toMatch(/^InvalidSignature: .*untrusted key/)
    // without --trust nothing is verified: the unsigned module runs
    expect((await cli("run", unsignedAgentPath("counter"), "add", "2")).out).toBe("[2]")
  })

  it("bad usage: exit 2, one line", async () => {
    for (const [argv, pattern] of [
      [["run"], /^error: missing <module\.wasm>$/],
      [["run", counter], /^error: missing <export>$/],
      [["run", "nope.wasm", "f"], /^error: cannot read nope\.wasm: no such file$/],
      [["run", counter, "add", "1", "--memory", "lots"], /^error: Invalid value for flag --memory/],
      [["run", counter, "add", "1", "--engine", "jvm"], /^error: .*--engine/],
      [["run", counter, "--wasi", "--engine", "native"], /^error: --wasi needs --engine node/]
    ] as Array<[Array<string>, RegExp]>) {
      const r = await cli(...argv)
      expect(r.code, argv.join(" ")).toBe(2)
      expect(r.err, argv.join(" ")).toMatch(pattern)
    }
  })
})

const W = `"wasi_snapshot_preview1"`
/** A WASI command: prints argv and env entries to stdout (one per line), "bye" to stderr, copies /data/in.txt to stdout, exits with the number of env entries. */
const WASI_COMMAND = `(module
  (import ${W} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import ${W} "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import ${W} "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import ${W} "args_get" (func $args_get (param i32 i32) (result i32)))
  (import ${W} "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import ${W} "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import ${W} "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import ${W} "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "\\n")
  (data (i32.const 72) "bye\\n")
  (data (i32.const 80) "in.txt")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr)) (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l)))
    (local.get $n))
  (func $lines (param $count i32) (param $ptrs i32) (local $i i32) (local $p i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $p (i32.load (i32.add (local.get $ptrs) (i32.mul (local.get $i) (i32.const 4)))))
      (call $write (i32.const 1) (local.get $p) (call $strlen (local.get $p)))
      (call $write (i32.const 1) (i32.const 64) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l))))
  (func (export "_start")
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 4096)))
    (call $lines (i32.load (i32.const 16)) (i32.const 1024))
    (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $environ_get (i32.const 2048) (i32.const 8192)))
    (call $lines (i32.load (i32.const 16)) (i32.const 2048))
    (call $write (i32.const 2) (i32.const 72) (i32.const 4))
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 80) (i32.const 6) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 24)))
      (then
        (i32.store (i32.const 0) (i32.const 12288)) (i32.store (i32.const 4) (i32.const 256))
        (drop (call $fd_read (i32.load (i32.const 24)) (i32.const 0) (i32.const 1) (i32.const 28)))
        (call $write (i32.const 1) (i32.const 12288) (i32.load (i32.const 28)))))
    ;; the exit code: the number of environment variables (still at offset 16)
    (call $proc_exit (i32.load (i32.const 16))))
)`

describe("agent-runtime run (node engine)", () => {
  it("--timeout preempts a runaway guest: Timeout, exit 6", async () => {
    const r = await cli("run", agentPath("looper"), "spin", "--engine", "node", "--timeout", "200ms")
    expect(r.code).toBe(6)
    expect(r.err).toMatch(/^Timeout: spin timed out after 200 ms$/)
    expect((await cli("run", agentPath("counter"), "add", "7", "--engine", "node")).out).toBe("[7]")
  }, 60_000)

  it("--wasi runs _start with argv, env and a preopened directory; prints its output; its proc_exit code is the exit code", async () => {
    writeFileSync(join(dir, "cmd.wasm"), await wat(WASI_COMMAND))
    rmSync(join(dir, "data"), { recursive: true, force: true })
    const r0 = await cli(
      "run",
      "cmd.wasm",
      "--wasi",
      "--dir",
      "data::/data",
      "--env",
      "MODE=test",
      "--",
      "hello",
      "--verbose"
    )
    expect(r0.err).toBe("bye")
    expect(r0.out.split("\n")).toEqual(["cmd.wasm", "hello", "--verbose", "MODE=test"])
    expect(r0.code).toBe(1) // proc_exit(1): one environment variable
    writeFileSync(join(dir, "data", "in.txt"), "from the host\n")
    const r1 = await cli("run", "cmd.wasm", "--wasi", "--dir", "data::/data")
    expect(r1.out.split("\n")).toEqual(["cmd.wasm", "from the host"])
    expect(r1.code).toBe(0)
    expect(readFileSync(join(dir, "data", "in.txt"), "utf8")).toBe("from the host\n")
  }, 60_000)
})

it("the fixtures exist (pnpm fixtures)", () => {
  expect(readFileSync(join(buildDir, "manifest.json"), "utf8")).toContain("counter")
})
