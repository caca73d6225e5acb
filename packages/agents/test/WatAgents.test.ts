import { Worker } from "node:worker_threads"
import { describe, expect, it } from "@effect/vitest"
import { agentPath, readAgent } from "../src/index.js"
import { instantiate, type WithMemory } from "./helpers.js"

interface Looper {
  spin(): void
  spin_n(n: number): number
  iterations(): bigint
  _health_check(): number
}

interface Multi {
  swap(a: number, b: bigint): [bigint, number]
  divmod(a: number, b: number): [number, number]
  add_f32(a: number, b: number): number
  mul_f64(a: number, b: number): number
  sqrt_f64(x: number): number
  all_types(): [number, bigint, number, number]
}

interface NoMemory {
  add(a: number, b: number): number
  accumulate(n: number): number
  factorial(n: bigint): bigint
}

interface HostCaller extends WithMemory {
  call_log(x: number): void
  log_n(n: number): number
  call_now(): number
  elapsed_since(t: number): number
  log_calls(): number
}

interface Grower extends WithMemory {
  grow(pages: number): number
  size(): number
  poke(addr: number, value: number): void
  peek(addr: number): number
}

const PAGE = 65_536

describe("looper", () => {
  it("spin_n runs a bounded loop and counts iterations", async () => {
    const l = await instantiate<Looper>("looper")
    expect(l.spin_n(1_000)).toBe(1_000)
    expect(l.spin_n(0)).toBe(0)
    expect(l.spin_n(-5)).toBe(0)
    expect(l.spin_n(2_500)).toBe(2_500)
    expect(l.iterations()).toBe(3_500n)
    expect(typeof l.spin).toBe("function")
  })

  it("spin never returns: only terminating its thread stops it", async () => {
    // spin() runs in a worker thread; the worker reports when it is about to call it.
    const source = `
      const { parentPort, workerData } = require("node:worker_threads")
      const bytes = require("node:fs").readFileSync(workerData)
      WebAssembly.instantiate(bytes).then(({ instance }) => {
        parentPort.postMessage("spinning")
        instance.exports.spin()
        parentPort.postMessage("returned")
      })`
    const worker = new Worker(source, { eval: true, workerData: agentPath("looper") })
    const messages: Array<string> = []
    worker.on("message", (m: string) => messages.push(m))
    await new Promise<void>((resolve) => worker.once("message", () => resolve()))
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(messages).toEqual(["spinning"])
    expect(await worker.terminate()).toBe(1)
    expect(messages).toEqual(["spinning"])
  })
})

describe("multi", () => {
  it("returns several values as arrays", async () => {
    const m = await instantiate<Multi>("multi")
    expect(m.swap(1, 2n)).toEqual([2n, 1])
    expect(m.swap(-1, -(2n ** 63n))).toEqual([-(2n ** 63n), -1])
    expect(m.divmod(17, 5)).toEqual([3, 2])
    expect(m.divmod(-17, 5)).toEqual([-3, -2])
    expect(() => m.divmod(1, 0)).toThrow(/divide by zero/)
    expect(m.all_types()).toEqual([7, -8n, 1.5, 2.25])
  })

  it("computes with f32 and f64", async () => {
    const m = await instantiate<Multi>("multi")
    expect(m.add_f32(0.1, 0.2)).toBe(Math.fround(Math.fround(0.1) + Math.fround(0.2)))
    expect(m.add_f32(0.1, 0.2)).not.toBe(0.1 + 0.2)
    expect(m.mul_f64(1.5, -4)).toBe(-6)
    expect(m.sqrt_f64(2)).toBe(Math.SQRT2)
    expect(m.sqrt_f64(-1)).toBeNaN()
  })
})

describe("no-memory", () => {
  it("has functions and no memory", async () => {
    const module = new WebAssembly.Module(readAgent("no-memory"))
    expect(WebAssembly.Module.exports(module).filter((e) => e.kind === "memory")).toEqual([])
    expect(WebAssembly.Module.imports(module)).toEqual([])
    const n = await instantiate<NoMemory>("no-memory")
    expect(n.add(2, 3)).toBe(5)
    expect(n.accumulate(10)).toBe(10)
    expect(n.accumulate(-3)).toBe(7)
    expect(n.factorial(20n)).toBe(2_432_902_008_176_640_000n)
  })
})

describe("host-caller", () => {
  it("calls the env.log and env.now imports", async () => {
    const logged: Array<number> = []
    const h = await instantiate<HostCaller>("host-caller", {
      env: { log: (x: number) => void logged.push(x), now: () => 123.5 }
    })
    h.call_log(7)
    expect(logged).toEqual([7])
    expect(h.log_n(3)).toBe(3)
    expect(logged).toEqual([7, 0, 1, 2])
    expect(h.log_calls()).toBe(4)
    expect(h.call_now()).toBe(123.5)
    expect(h.elapsed_since(100)).toBe(23.5)
  })

  it("declares exactly its two imports and fails to link without them", async () => {
    const module = new WebAssembly.Module(readAgent("host-caller"))
    expect(WebAssembly.Module.imports(module)).toEqual([
      { module: "env", name: "log", kind: "function" },
      { module: "env", name: "now", kind: "function" }
    ])
    await expect(WebAssembly.instantiate(module, {})).rejects.toThrow(TypeError)
    await expect(WebAssembly.instantiate(module, { env: { log: () => {} } })).rejects.toThrow(WebAssembly.LinkError)
  })

  it("propagates an exception thrown by an import", async () => {
    const h = await instantiate<HostCaller>("host-caller", {
      env: {
        log: () => {
          throw new Error("host says no")
        },
        now: () => 0
      }
    })
    expect(() => h.call_log(1)).toThrow("host says no")
  })
})

describe("grower", () => {
  it("grows to its maximum of 4 pages, then memory.grow returns -1", async () => {
    const g = await instantiate<Grower>("grower")
    expect(g.size()).toBe(1)
    expect(g.memory.buffer.byteLength).toBe(PAGE)
    expect(g.grow(1)).toBe(1)
    expect(g.grow(2)).toBe(2)
    expect(g.size()).toBe(4)
    expect(g.memory.buffer.byteLength).toBe(4 * PAGE)
    expect(g.grow(1)).toBe(-1)
    expect(g.grow(0)).toBe(4)
    expect(g.size()).toBe(4)
    g.poke(4 * PAGE - 1, 0xab)
    expect(g.peek(4 * PAGE - 1)).toBe(0xab)
    expect(() => g.peek(4 * PAGE)).toThrow(/memory access out of bounds/)
  })

  it("fails at once past the maximum", async () => {
    const g = await instantiate<Grower>("grower")
    expect(g.grow(4)).toBe(-1)
    expect(g.size()).toBe(1)
  })
})

describe("start-trap", () => {
  it("compiles but traps on instantiation", async () => {
    const bytes = readAgent("start-trap")
    const module = new WebAssembly.Module(bytes)
    expect(WebAssembly.Module.exports(module).map((e) => e.name)).toEqual(["memory", "never"])
    await expect(WebAssembly.instantiate(module)).rejects.toThrow(WebAssembly.RuntimeError)
    await expect(WebAssembly.instantiate(bytes)).rejects.toThrow(/unreachable/)
  })
})
