import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Worker } from "node:worker_threads"
import { NodeEngine } from "../src/index.js"
import { call, instantiateWat } from "./helpers.js"

const W = `"wasi_snapshot_preview1"`

/** A WASI command: `_start` writes to stdout and stderr, then exits with `code`. Plus probes of args, env, stdin, files. */
const COMMAND = `(module
  (import ${W} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import ${W} "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import ${W} "proc_exit" (func $proc_exit (param i32)))
  (import ${W} "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import ${W} "args_get" (func $args_get (param i32 i32) (result i32)))
  (import ${W} "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import ${W} "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import ${W} "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, out\\n")
  (data (i32.const 32) "oops\\n")
  (data (i32.const 48) "note.txt")
  (global $code (mut i32) (i32.const 3))
  (func (export "set_code") (param i32) local.get 0 global.set $code)
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr)) (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 16) (i32.const 11))
    (call $write (i32.const 2) (i32.const 32) (i32.const 5))
    (call $proc_exit (global.get $code))
    unreachable)
  (func (export "argc") (result i32)
    (drop (call $args_sizes_get (i32.const 100) (i32.const 104))) (i32.load (i32.const 100)))
  (func (export "argv0") (result i32 i32)
    (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))
    (drop (call $args_get (i32.const 200) (i32.const 1024)))
    (i32.load (i32.const 200)) (i32.sub (i32.load (i32.const 104)) (i32.const 1)))
  (func (export "envc") (result i32 i32)
    (drop (call $environ_sizes_get (i32.const 100) (i32.const 104)))
    (i32.load (i32.const 100)) (i32.load (i32.const 104)))
  (func (export "prestat3") (result i32) (call $fd_prestat_get (i32.const 3) (i32.const 400)))
  (func (export "read_stdin") (result i32 i32)
    (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const 256))
    (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 304)) (i32.load (i32.const 304)))
  (func (export "read_note") (result i32 i32) (local $e i32)
    (local.set $e (call $path_open (i32.const 3) (i32.const 0) (i32.const 48) (i32.const 8) (i32.const 0)
      (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))
    (if (local.get $e) (then (return (local.get $e) (i32.const 0))))
    (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const 256))
    (local.set $e (call $fd_read (i32.load (i32.const 300)) (i32.const 0) (i32.const 1) (i32.const 304)))
    (local.get $e) (i32.load (i32.const 304))))`

/** A WASI reactor: `_initialize` sets up, `greet` writes. */
const REACTOR = `(module
  (import ${W} "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\\n")
  (data (i32.const 32) "hi\\n")
  (global $ready (mut i32) (i32.const 0))
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr)) (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_initialize") (global.set $ready (i32.const 1)) (call $write (i32.const 16) (i32.const 6)))
  (func (export "greet") (result i32) (call $write (i32.const 32) (i32.const 3)) (global.get $ready)))`

const ERRNO_BADF = 8
const ERRNO_NOTCAPABLE = 76

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

for (const channel of ["shared", "message"] as const) {
  describe(`WASI preview1 (${channel} channel)`, () => {
    const dir = mkdtempSync(join(tmpdir(), "engine-node-preopen-"))
    writeFileSync(join(dir, "note.txt"), "secret notes")
    const engine = NodeEngine.make({
      workers: 1,
      channel,
      wasi: { preopens: (agentId) => (agentId.startsWith("granted") ? { "/data": dir } : undefined) }
    })
    afterAll(async () => {
      await Effect.runPromise(engine.shutdown)
      rmSync(dir, { recursive: true, force: true })
    })

    it.effect(
      "a command's _start runs main; stdout/stderr are captured per agent; proc_exit(3) is a typed outcome",
      () =>
        Effect.gen(function* () {
          const a = yield* instantiateWat(engine, COMMAND, { id: `cmd-a-${channel}` })
          const b = yield* instantiateWat(engine, COMMAND, { id: `cmd-b-${channel}` })
          const exit = yield* Effect.flip(a.invoke("_start", []))
          expect(exit._tag).toBe("Trap")
          expect(exit.message).toMatch(/proc_exit\(3\)/)
          expect(engine.output(`cmd-a-${channel}`)).toEqual({ stdout: "hello, out\n", stderr: "oops\n", exitCode: 3 })
          // b has not run: nothing written, no exit
          expect(engine.output(`cmd-b-${channel}`)).toEqual({ stdout: "", stderr: "", exitCode: undefined })
          // the worker is alive and the instance still answers
          expect(yield* call(a, "argc")).toEqual([1])
          // proc_exit(0) is a normal return
          yield* b.invoke("set_code", [0])
          const ok = yield* b.invoke("_start", [])
          expect(ok.results).toEqual([])
          expect(engine.output(`cmd-b-${channel}`)?.exitCode).toBe(0)
          expect(engine.output("nobody")).toBeUndefined()
        })
    )

    it.effect("no arguments or environment from the host: args = [agentId], env = {}; stdin is empty", () =>
      Effect.gen(function* () {
        const id = `args-${channel}`
        const a = yield* instantiateWat(engine, COMMAND, { id })
        expect(yield* call(a, "argc")).toEqual([1])
        const [ptr, len] = (yield* call(a, "argv0")) as [number, number]
        expect(text(yield* a.readMemory(ptr, len))).toBe(id)
        expect(yield* call(a, "envc")).toEqual([0, 0])
        expect(yield* call(a, "read_stdin")).toEqual([0, 0])
      })
    )

    it.effect("a preopened directory only when granted", () =>
      Effect.gen(function* () {
        const denied = yield* instantiateWat(engine, COMMAND, { id: `denied-${channel}` })
        expect(yield* call(denied, "prestat3")).toEqual([ERRNO_BADF])
        const [errno] = (yield* call(denied, "read_note")) as [number, number]
        expect([ERRNO_BADF, ERRNO_NOTCAPABLE]).toContain(errno)

        const granted = yield* instantiateWat(engine, COMMAND, { id: `granted-${channel}` })
        expect(yield* call(granted, "prestat3")).toEqual([0])
        const [e, n] = (yield* call(granted, "read_note")) as [number, number]
        expect(e).toBe(0)
        expect(text(yield* granted.readMemory(2048, n))).toBe("secret notes")
      })
    )

    it.effect("a reactor is initialised by invoking _initialize; its exports use WASI", () =>
      Effect.gen(function* () {
        const id = `reactor-${channel}`
        const r = yield* instantiateWat(engine, REACTOR, { id })
        yield* r.invoke("_initialize", [])
        expect(yield* call(r, "greet")).toEqual([1])
        expect(engine.output(id)?.stdout).toBe("ready\nhi\n")
      })
    )

    it.effect("host-provided wasi_snapshot_preview1 imports win over the engine's", () =>
      Effect.gen(function* () {
        const writes: Array<number> = []
        const r = yield* instantiateWat(engine, REACTOR, {
          id: `own-wasi-${channel}`,
          imports: { wasi_snapshot_preview1: { fd_write: (fd: number) => (writes.push(fd), 0) } }
        })
        yield* r.invoke("greet", [])
        expect(writes).toEqual([1])
        expect(engine.output(`own-wasi-${channel}`)).toBeUndefined()
      })
    )
  })
}

describe("ExperimentalWarning", () => {
  const capture = async (run: () => Promise<void>): Promise<string> => {
    let seen = ""
    const original = process.stderr.write.bind(process.stderr)
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: Array<unknown>) => {
      seen += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString()
      const callback = rest.find((r) => typeof r === "function") as (() => void) | undefined
      callback?.()
      return true
    }) as typeof process.stderr.write
    try {
      await run()
      await new Promise((r) => setTimeout(r, 100))
    } finally {
      process.stderr.write = original
    }
    return seen
  }

  it("a plain worker that loads node:wasi prints it (the check below can fail)", async () => {
    const seen = await capture(async () => {
      const w = new Worker(`require("node:wasi"); setTimeout(() => {}, 50)`, { eval: true })
      await new Promise((r) => w.once("exit", r))
    })
    expect(seen).toMatch(/ExperimentalWarning: WASI/)
  })

  it("the engine's workers never print it", async () => {
    for (const channel of ["shared", "message"] as const) {
      const seen = await capture(async () => {
        const engine = NodeEngine.make({ workers: 1, channel })
        const r = await Effect.runPromise(instantiateWat(engine, REACTOR))
        await Effect.runPromise(r.invoke("_initialize", []))
        await new Promise((r) => setTimeout(r, 50))
        await Effect.runPromise(engine.shutdown)
      })
      expect(seen).not.toMatch(/ExperimentalWarning/)
    }
  })
})
