/**
 * WASI preview1 through `@bjorn3/browser_wasi_shim` in real Chromium, in a
 * worker and in-page: stdout/stderr per agent, `proc_exit` codes, args, and a
 * preopened in-memory directory.
 */
import { agentId, moduleHash } from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { BrowserEngine } from "../src/index.js"

/** A WASI program: writes "hello <argv[1]>\n" to stdout and "oops\n" to stderr, exits with its argument. */
const program = wat(`
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello\\n")
  (data (i32.const 200) "oops\\n")
  (data (i32.const 300) "greeting.txt")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "greet") (result i32)
    (call $write (i32.const 1) (i32.const 100) (i32.const 6))
    (call $write (i32.const 2) (i32.const 200) (i32.const 5))
    (i32.const 0))
  (func (export "exit") (param $code i32)
    (call $proc_exit (local.get $code)))
  ;; opens /greeting.txt in the preopened dir (fd 3), reads it, echoes it to stdout; returns bytes read or -errno
  (func (export "cat") (result i32)
    (local $errno i32)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 300) (i32.const 12) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $errno) (then (return (i32.sub (i32.const 0) (local.get $errno)))))
    (i32.store (i32.const 20) (i32.const 1024))
    (i32.store (i32.const 24) (i32.const 256))
    (drop (call $fd_read (i32.load (i32.const 16)) (i32.const 20) (i32.const 1) (i32.const 40)))
    (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 40)))
    (i32.load (i32.const 40))))
`)

const withEngine = <A, E>(
  options: BrowserEngine.BrowserEngineOptions,
  body: (engine: BrowserEngine.BrowserEngineShape) => Effect.Effect<A, E>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(Layer.orDie(BrowserEngine.layerWith(options)))
      return yield* body(Context.get(context, BrowserEngine.BrowserEngine))
    })
  )

describe("BrowserWasi", () => {
  for (const mode of ["workers", "inPage"] as const) {
    it.effect(
      `${mode}: stdout and stderr per agent, proc_exit(0) returns, proc_exit(3) is a Trap with the code kept`,
      () =>
        withEngine(
          { mode, wasi: { files: () => ({ "greeting.txt": new TextEncoder().encode("hi from a file") }) } },
          (engine) =>
            Effect.gen(function* () {
              const compiled = yield* engine.compile(yield* Effect.promise(() => program), moduleHash("1".repeat(64)))
              const a = yield* engine.instantiate(compiled, {
                agentId: agentId("wa"),
                memoryLimit: 1 << 24,
                imports: {}
              })
              const b = yield* engine.instantiate(compiled, {
                agentId: agentId("wb"),
                memoryLimit: 1 << 24,
                imports: {}
              })
              expect((yield* a.invoke("greet", [])).results).toEqual([0])
              expect((yield* a.invoke("greet", [])).results).toEqual([0])
              expect(engine.output("wa")).toEqual({
                stdout: "hello\nhello\n",
                stderr: "oops\noops\n",
                exitCode: undefined
              })
              expect(engine.output("wb")).toEqual({ stdout: "", stderr: "", exitCode: undefined })
              expect((yield* b.invoke("exit", [0])).results).toEqual([])
              expect(engine.output("wb")?.exitCode).toBe(0)
              const e = yield* Effect.flip(b.invoke("exit", [3]))
              expect(e).toMatchObject({ _tag: "Trap", function: "exit" })
              expect(e.message).toMatch(/proc_exit\(3\)/)
              expect(engine.output("wb")?.exitCode).toBe(3)
              // the preopened in-memory directory
              expect((yield* a.invoke("cat", [])).results).toEqual([14])
              expect(engine.output("wa")?.stdout).toBe("hello\nhello\nhi from a file")
            })
        )
    )
  }

  it.effect("without files granted there is no filesystem: path_open fails with a WASI errno", () =>
    withEngine({}, (engine) =>
      Effect.gen(function* () {
        const compiled = yield* engine.compile(yield* Effect.promise(() => program), moduleHash("1".repeat(64)))
        const a = yield* engine.instantiate(compiled, { agentId: agentId("nofs"), memoryLimit: 1 << 24, imports: {} })
        const [r] = (yield* a.invoke("cat", [])).results as [number]
        expect(r).toBeLessThan(0) // -EBADF: no fd 3
      })
    )
  )
})
