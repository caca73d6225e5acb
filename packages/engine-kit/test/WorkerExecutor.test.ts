/**
 * The executor's snapshot tracking with the dirty-page write barrier, run in
 * this thread: the diffs it reports for a barred module equal the full
 * comparison's (same random workload on the module without the barrier),
 * a call that stores nothing compares nothing, and every write the barrier
 * cannot see (instantiation, writeMemory, restore) makes a full comparison.
 */
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import { DIRTY_PAGES_EXPORT, instrumentDirtyPages } from "@agent-runtime/wasm-binary"
import { type Diff, Op, type Reply, type Request, type Tracking } from "../src/Protocol.js"
import * as WorkerExecutor from "../src/WorkerExecutor.js"

const PAGE = 65_536

const MODULE = `
(module
  (import "env" "mem" (memory 70))
  (global $calls (export "calls") (mut i32) (i32.const 0))
  (data (i32.const 65540) "from a data segment")
  (func (export "noop") (global.set $calls (i32.add (global.get $calls) (i32.const 1))))
  (func (export "store64") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "store8") (param i32 i32) (i32.store8 offset=3 (local.get 0) (local.get 1)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  ;; the store's bit stays in the function's local: the trap unwinds the frame before it is published
  (func (export "storeThenTrap") (param i32 i32) (i32.store (local.get 0) (local.get 1)) (unreachable))
)`

const executor = () =>
  WorkerExecutor.make<never>({
    platform: {
      createWasi: () => {
        throw new Error("no WASI here")
      },
      exitCode: () => undefined,
      notAModule: "not a module"
    },
    hostFunction: () => () => undefined
  })

/** One executor with one instance of `bytes` over an imported memory the test can reach. */
const start = (bytes: Uint8Array, tracking: Tracking = [1, 0]) => {
  const run = executor()
  const memory = new WebAssembly.Memory({ initial: 70 })
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)
  const diffOf = (reply: Reply): Diff => {
    // a trap is reported with its diff too (the stores before it happened)
    return (reply[0] === 1 ? reply[4] : reply[3]) as Diff
  }
  const request = (r: Request<never>) => diffOf(run(r))
  const first = request([Op.Instantiate, 1, module, [["env", "mem", 1, memory]], null, tracking, null])
  return {
    memory,
    first,
    invoke: (fn: string, ...args: Array<number | bigint>) => request([Op.Invoke, 1, fn, args, null]),
    write: (offset: number, bytes: Uint8Array) => request([Op.Write, 1, offset, bytes])
  }
}

const pagesOf = (diff: Diff): ReadonlyArray<number> => (diff === null || diff === false ? [] : diff[1])

const barred = async () => {
  const bytes = await wat(MODULE)
  const r = instrumentDirtyPages(bytes)
  if (!r.ok) throw r.error
  return { plain: bytes, barred: r.value }
}

describe("WorkerExecutor: tracking with the dirty-page barrier", () => {
  it("reports what a full comparison reports, on a random workload (page-crossing stores included)", async () => {
    const modules = await barred()
    const a = start(modules.plain)
    const b = start(modules.barred)
    expect(b.first).toEqual(a.first)
    expect(pagesOf(b.first)).toEqual([1]) // the data segment: the first comparison is full
    let seed = 7
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    /** A diff in a form cheap to compare: page indexes, each page's bytes as one hex digest-free string key. */
    const summary = (diff: Diff) =>
      diff === null || diff === false
        ? diff
        : {
            bytes: diff[0],
            pages: diff[1],
            data: diff[2].map((d) => (d === null ? null : Buffer.from(d).toString("base64"))),
            globals: [diff[3], diff[4]]
          }
    for (let k = 0; k < 120; k++) {
      const page = random(70)
      const near = random(2) === 0 ? page * PAGE + PAGE - 1 - random(12) : page * PAGE + random(PAGE - 16)
      const choice = random(6)
      const call = (x: typeof a) =>
        choice === 0
          ? x.invoke("noop")
          : choice === 1
            ? x.invoke("store64", near, BigInt(random(1 << 30)) + 1n)
            : choice === 2
              ? x.invoke("store8", near, random(255) + 1)
              : choice === 3
                ? x.invoke("fill", near, random(256), random(2 * PAGE))
                : choice === 4
                  ? x.write(near, new Uint8Array([random(255) + 1, 1, 2]))
                  : x.invoke("storeThenTrap", near, random(1 << 30) + 1)
      // the same arguments for both: replay the random draws
      const saved = seed
      const da = call(a)
      seed = saved
      const db = call(b)
      expect(summary(db)).toStrictEqual(summary(da))
    }
  })

  it("a call that stores nothing compares nothing; a store compares its page and the next", async () => {
    const modules = await barred()
    const b = start(modules.barred)
    const plain = start(modules.plain)
    // a change the guest's code did not make (not possible in a worker: the memory is the worker's own) …
    new Uint8Array(b.memory.buffer)[5 * PAGE] = 1
    new Uint8Array(plain.memory.buffer)[5 * PAGE] = 1
    // … is not looked for after a call that stored nothing (no pages compared), but is without the barrier
    expect(pagesOf(b.invoke("noop"))).toEqual([])
    expect(pagesOf(plain.invoke("noop"))).toEqual([5])
    // a store compares pages p and p + 1 (mod 64 aliases): page 5 is found after a store into page 4
    expect(pagesOf(b.invoke("store64", 4 * PAGE, 9n))).toEqual([4, 5])
    // a page-crossing store
    expect(pagesOf(b.invoke("store64", 10 * PAGE - 4, -1n))).toEqual([9, 10])
    expect(new Uint8Array(b.memory.buffer, 10 * PAGE - 4, 8)).toEqual(new Uint8Array(8).fill(255))
    // aliasing: a store into page 66 (≡ 2) compares page 2's and 3's aliases too (all equal: only 66 reported)
    expect(pagesOf(b.invoke("store8", 66 * PAGE, 1))).toEqual([66])
  })

  it("a trapped call makes the comparison full: its unpublished stores are found", async () => {
    const modules = await barred()
    const b = start(modules.barred)
    expect(pagesOf(b.invoke("storeThenTrap", 30 * PAGE, 5))).toEqual([30])
    expect(new Uint8Array(b.memory.buffer)[30 * PAGE]).toBe(5)
    expect(pagesOf(b.invoke("noop"))).toEqual([])
  })

  it("writeMemory makes the next comparison full", async () => {
    const modules = await barred()
    const b = start(modules.barred)
    new Uint8Array(b.memory.buffer)[7 * PAGE] = 3 // unseen by the barrier
    expect(pagesOf(b.write(20 * PAGE, new Uint8Array([1])))).toEqual([7, 20])
    expect(pagesOf(b.invoke("noop"))).toEqual([])
  })

  it("without tracking the bitmap is not read", async () => {
    const modules = await barred()
    const b = start(modules.barred, [0, 0])
    expect(b.invoke("store64", 0, 1n)).toBeNull()
    const module = new WebAssembly.Module(modules.barred as Uint8Array<ArrayBuffer>)
    expect(WebAssembly.Module.exports(module).map((e) => e.name)).toContain(DIRTY_PAGES_EXPORT)
  })
})

describe("WorkerExecutor: globals in the tracking diff", () => {
  const globalsOf = (diff: Diff) => (diff === null || diff === false ? undefined : [diff[3], diff[4]])

  it("a diff carries only the globals that changed since the last report; merged, they are the live values", async () => {
    const modules = await barred()
    for (const bytes of [modules.plain, modules.barred]) {
      const x = start(bytes)
      expect(globalsOf(x.first)).toEqual([["calls"], [0]]) // the first report has them all
      expect(globalsOf(x.invoke("store64", 0, 1n))).toEqual([[], []])
      expect(globalsOf(x.invoke("noop"))).toEqual([["calls"], [1]])
      expect(globalsOf(x.invoke("fill", 0, 0, 8))).toEqual([[], []])
      const kept = new Map<string, number | bigint>()
      for (const d of [x.invoke("noop"), x.invoke("store8", 9, 1), x.invoke("noop")]) {
        const [names, values] = globalsOf(d)!
        for (let i = 0; i < names!.length; i++) kept.set(names![i] as string, values![i] as number)
      }
      expect([...kept]).toEqual([["calls", 3]])
    }
  })

  it("the empty lists of a diff that found nothing are shared and never written to", async () => {
    const modules = await barred()
    const x = start(modules.barred)
    const a = x.invoke("store64", 0, 0n) // writes the zero that is there: nothing changed
    const b = x.invoke("store64", 8, 0n)
    if (a === null || a === false || b === null || b === false) throw new Error("tracking is on")
    expect([a[1], a[2], a[3], a[4]]).toEqual([[], [], [], []])
    expect(a[1]).toBe(b[1])
    expect(a[3]).toBe(b[3])
    // a later change gets fresh lists: the shared ones stay empty
    const c = x.invoke("store64", 16, 5n)
    expect(c !== null && c !== false && c[1]).toEqual([0])
    expect(a[1]).toEqual([])
  })
})

describe("WorkerExecutor: invoke through each export's cached caller", () => {
  const CALLS = `
(module
  (memory (export "memory") 1 4)
  (global $n (export "n") (mut i32) (i32.const 0))
  (func (export "noop"))
  (func (export "one") (result i32) (i32.const 7))
  (func (export "pair") (param i32 i64) (result i32 i64) (local.get 0) (local.get 1))
  (func (export "bump") (global.set $n (i32.add (global.get $n) (i32.const 1))))
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
  (func (export "boom") (unreachable)))`

  const open = async (tracking: Tracking = [1, 0]) => {
    const run = executor()
    const module = new WebAssembly.Module((await wat(CALLS)) as Uint8Array<ArrayBuffer>)
    const first = run([Op.Instantiate, 1, module, [], null, tracking, null])
    expect(first[0]).toBe(1)
    return (fn: string, ...args: Array<number | bigint>) => run([Op.Invoke, 1, fn, args, null])
  }

  it("answers every call as the first one did: results, multi-value, missing exports, traps", async () => {
    const invoke = await open()
    for (let round = 0; round < 3; round++) {
      const none = invoke("noop")
      expect(none.slice(0, 4)).toEqual([1, [], PAGE, null])
      // one shared array for every void call: frozen, since in-page the caller gets it as its results
      expect(Object.isFrozen(none[1])).toBe(true)
      expect(invoke("one")[1]).toEqual([7])
      expect(invoke("pair", 3, 5n)[1]).toEqual([3, 5n])
      const missing = invoke("missing")
      expect(missing).toEqual([0, ["FunctionNotFound", "missing"], PAGE, null, null])
      const boom = invoke("boom")
      expect(boom[0]).toBe(0)
      expect((boom[1] as ReadonlyArray<unknown>).slice(0, 2)).toEqual(["Trap", "boom"])
      // a trap does not end the instance: the next call goes through the same cached caller
      expect(invoke("one")[1]).toEqual([7])
    }
  })

  it("a call after Drop is refused with 'instance terminated'", async () => {
    const run = executor()
    const module = new WebAssembly.Module((await wat(CALLS)) as Uint8Array<ArrayBuffer>)
    run([Op.Instantiate, 1, module, [], null, [0, 0], null])
    expect(run([Op.Invoke, 1, "one", [], null])[1]).toEqual([7])
    run([Op.Drop, 1])
    expect(run([Op.Invoke, 1, "one", [], null])[1]).toEqual(["Trap", "one", "instance terminated"])
  })

  it("a diff that found nothing is one tuple, reused while the memory size holds", async () => {
    const invoke = await open()
    const diffOf = (reply: Reply) => reply[4] as Diff
    const a = diffOf(invoke("noop"))
    const b = diffOf(invoke("one"))
    expect(a).toEqual([PAGE, [], [], [], []])
    expect(b).toBe(a)
    // a changed global gets its own diff; the next empty one is the shared tuple again
    const bumped = diffOf(invoke("bump"))
    expect(bumped).toEqual([PAGE, [], [], ["n"], [1]])
    expect(diffOf(invoke("noop"))).toBe(a)
    // a grown memory: a new tuple with the new size (the new page is zero: no page changed)
    expect(invoke("grow")[1]).toEqual([1])
    const grown = diffOf(invoke("noop"))
    expect(grown).toEqual([2 * PAGE, [], [], [], []])
    expect(diffOf(invoke("noop"))).toBe(grown)
    // without tracking there is no diff at all
    const untracked = await open([0, 0])
    expect(untracked("noop")[4]).toBeNull()
  })
})
