import * as zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { type Allocator, crc32, instantiate, readPair, utf8, withBytes, type WithMemory } from "./helpers.js"

interface Counter extends WithMemory {
  increment(): number
  add(n: number): number
  get(): number
  reset(): void
  add_i64(a: bigint, b: bigint): bigint
  _health_check(): number
}

interface Text extends Allocator {
  word_count(ptr: number, len: number): number
  unique_words(ptr: number, len: number): number
  checksum(ptr: number, len: number): number
  top_word(ptr: number, len: number): number
  _health_check(): number
}

interface Leaky extends WithMemory {
  leak(kib: number): number
  leaked(): number
  calls_made(): number
  pages(): number
  _health_check(): number
}

interface Flaky extends WithMemory {
  work(): number
  configure(n: number): void
  _health_check(): number
  _recover(): number
  health_checks(): number
  threshold_value(): number
}

interface Trapper extends WithMemory {
  divide(a: number, b: number): number
  crash(): void
  oob(): number
  recurse(n: number): number
  ok(): number
}

interface Lifecycle extends WithMemory {
  _initialize(): void
  _cleanup(): void
  _health_check(): number
  _recover(): number
  break_health(): void
  state(): number
  bump(): number
  initialized(): number
  initializations_count(): number
  cleanups_count(): number
  recoveries_count(): number
}

describe("counter", () => {
  it("counts, adds, resets and keeps state per instance", async () => {
    const a = await instantiate<Counter>("counter")
    const b = await instantiate<Counter>("counter")
    expect(a.get()).toBe(0)
    expect(a.increment()).toBe(1)
    expect(a.increment()).toBe(2)
    expect(a.add(40)).toBe(42)
    expect(a.add(-2)).toBe(40)
    expect(a.get()).toBe(40)
    expect(b.get()).toBe(0)
    a.reset()
    expect(a.get()).toBe(0)
    expect(a._health_check()).toBe(0)
  })

  it("wraps i32 and adds i64 as bigint", async () => {
    const c = await instantiate<Counter>("counter")
    c.add(2_147_483_647)
    expect(c.increment()).toBe(-2_147_483_648)
    expect(c.add_i64(9_007_199_254_740_993n, 1n)).toBe(9_007_199_254_740_994n)
    expect(c.add_i64(9_223_372_036_854_775_807n, 1n)).toBe(-9_223_372_036_854_775_808n)
    expect(() => c.add_i64(1 as unknown as bigint, 2n)).toThrow(TypeError)
  })
})

describe("text", () => {
  const sentence = "The quick brown fox jumps over the lazy dog. THE DOG sleeps; the fox runs!"

  it("counts words and distinct words in real sentences", async () => {
    const t = await instantiate<Text>("text")
    const count = (s: string) => withBytes(t, utf8(s), t.word_count)
    const unique = (s: string) => withBytes(t, utf8(s), t.unique_words)
    expect(count(sentence)).toBe(15)
    expect(unique(sentence)).toBe(10)
    expect(count("")).toBe(0)
    expect(count("  ,,, 123 !! ")).toBe(0)
    expect(count("one")).toBe(1)
    expect(count("don't stop-me now")).toBe(5) // don, t, stop, me, now
    expect(unique("a A a b B")).toBe(2)
    expect(count("héllo wörld")).toBe(4) // non-ASCII bytes separate words: h, llo, w, rld
  })

  it("returns the most frequent lowercased word through a (ptr, len) pair", async () => {
    const t = await instantiate<Text>("text")
    const top = (s: string) =>
      new TextDecoder().decode(withBytes(t, utf8(s), (ptr, len) => readPair(t.memory, t.top_word(ptr, len))))
    expect(top(sentence)).toBe("the")
    expect(top("b a A b a")).toBe("a")
    expect(top("tie break: first seen wins tie break")).toBe("tie")
    expect(top("")).toBe("")
    const long = `${"Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(200)}${"zeta ".repeat(201)}`
    expect(top(long)).toBe("zeta")
    expect(withBytes(t, utf8(long), t.word_count)).toBe(8 * 200 + 201)
  })

  it("computes CRC-32 (IEEE) equal to a JS implementation and zlib", async () => {
    const t = await instantiate<Text>("text")
    const inputs = [
      utf8(""),
      utf8("123456789"),
      utf8(sentence),
      Uint8Array.from({ length: 100_000 }, (_, i) => (i * 31 + (i >> 3)) & 0xff)
    ]
    const zlibCrc = (zlib as { crc32?: (data: Uint8Array) => number }).crc32
    for (const bytes of inputs) {
      const fromWasm = withBytes(t, bytes, t.checksum) >>> 0
      expect(fromWasm).toBe(crc32(bytes))
      if (zlibCrc !== undefined) expect(fromWasm).toBe(zlibCrc(bytes))
    }
    expect(withBytes(t, utf8("123456789"), t.checksum) >>> 0).toBe(0xcbf43926) // the standard check value
  })

  it("reuses freed blocks: many calls do not grow memory", async () => {
    const t = await instantiate<Text>("text")
    const bytes = utf8(sentence.repeat(50))
    for (let i = 0; i < 20; i++) withBytes(t, bytes, t.unique_words)
    const after = t.memory.buffer.byteLength
    for (let i = 0; i < 200; i++) withBytes(t, bytes, t.unique_words)
    expect(t.memory.buffer.byteLength).toBe(after)
    expect(t._health_check()).toBe(0)
  })
})

describe("leaky", () => {
  it("grows linear memory on every call and stays healthy", async () => {
    const l = await instantiate<Leaky>("leaky")
    const before = l.memory.buffer.byteLength
    expect(l.leak(0)).toBe(0)
    expect(l.leak(1024)).toBe(1024)
    expect(l.leak(1024)).toBe(2048)
    expect(l.leak(2048)).toBe(4096)
    expect(l.leaked()).toBe(4096)
    expect(l.calls_made()).toBe(4)
    const after = l.memory.buffer.byteLength
    expect(after - before).toBeGreaterThanOrEqual(4 * 1024 * 1024)
    expect(l.pages()).toBe(after / 65536)
    // the leaked bytes were really written
    const bytes = new Uint8Array(l.memory.buffer)
    let touched = 0
    for (const b of bytes) if (b !== 0) touched++
    expect(touched).toBeGreaterThanOrEqual(4 * 1024 * 1024)
    expect(l._health_check()).toBe(0)
  })

  it("traps when one call asks for 1 GiB or more, and goes on working", async () => {
    const l = await instantiate<Leaky>("leaky")
    expect(() => l.leak(1 << 20)).toThrow(/unreachable/)
    expect(() => l.leak(2_147_483_647)).toThrow(WebAssembly.RuntimeError)
    expect(l.leak(64)).toBe(64)
  })
})

describe("flaky", () => {
  it("passes its first 5 health checks, then fails forever; _recover does not help", async () => {
    const f = await instantiate<Flaky>("flaky")
    expect(f.threshold_value()).toBe(5)
    const results = Array.from({ length: 8 }, () => f._health_check())
    expect(results).toEqual([0, 0, 0, 0, 0, 503, 503, 503])
    expect(f._recover()).toBe(503)
    f.configure(1_000)
    expect(f._health_check()).toBe(503)
    expect(f.health_checks()).toBe(9)
    expect(f.work()).toBe(1)
    expect(f.work()).toBe(2)
  })

  it("configure(n) changes N", async () => {
    const f = await instantiate<Flaky>("flaky")
    f.configure(2)
    expect(f._recover()).toBe(0)
    expect([f._health_check(), f._health_check(), f._health_check()]).toEqual([0, 0, 503])
  })
})

describe("trapper", () => {
  it("traps with the WebAssembly RuntimeError of each cause", async () => {
    const t = await instantiate<Trapper>("trapper")
    expect(t.ok()).toBe(42)
    expect(t.divide(7, 2)).toBe(3)
    expect(t.divide(-7, 2)).toBe(-3)
    expect(() => t.divide(1, 0)).toThrow(WebAssembly.RuntimeError)
    expect(() => t.divide(1, 0)).toThrow(/divide by zero/)
    expect(() => t.divide(-2_147_483_648, -1)).toThrow(/divide result unrepresentable/)
    expect(() => t.crash()).toThrow(WebAssembly.RuntimeError)
    expect(() => t.crash()).toThrow(/unreachable/)
    expect(() => t.oob()).toThrow(WebAssembly.RuntimeError)
    expect(() => t.oob()).toThrow(/memory access out of bounds/)
    // the instance is still usable after a trap
    expect(t.ok()).toBe(42)
  })

  it("recurses n deep, and overflows the stack when n is huge", async () => {
    const t = await instantiate<Trapper>("trapper")
    expect(t.recurse(1_000)).toBe(1_000)
    // V8 reports wasm stack exhaustion as a RangeError, not a RuntimeError
    expect(() => t.recurse(1_000_000_000)).toThrow(/Maximum call stack size exceeded/)
    expect(t.ok()).toBe(42)
  })
})

describe("lifecycle", () => {
  it("runs nothing at instantiation; _initialize sets state to 100", async () => {
    const l = await instantiate<Lifecycle>("lifecycle")
    expect(l.initialized()).toBe(0)
    expect(l.state()).toBe(0)
    l._initialize()
    expect(l.initialized()).toBe(1)
    expect(l.state()).toBe(100)
    expect(l.bump()).toBe(101)
    expect(l.initializations_count()).toBe(1)
  })

  it("fails health after break_health until _recover fixes it", async () => {
    const l = await instantiate<Lifecycle>("lifecycle")
    l._initialize()
    expect(l._health_check()).toBe(0)
    l.break_health()
    expect(l._health_check()).toBe(2)
    expect(l._health_check()).toBe(2)
    expect(l._recover()).toBe(0)
    expect(l._health_check()).toBe(0)
    expect(l.recoveries_count()).toBe(1)
  })

  it("_cleanup records the cleanup in a global", async () => {
    const l = await instantiate<Lifecycle>("lifecycle")
    l._initialize()
    l._cleanup()
    expect(l.cleanups_count()).toBe(1)
    expect(l.initialized()).toBe(0)
    expect(l.state()).toBe(100)
  })
})
