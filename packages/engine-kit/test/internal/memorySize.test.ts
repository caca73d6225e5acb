import { describe, expect, it } from "@effect/vitest"
import { memorySize } from "../../src/internal/memorySize.js"

describe("memory size helper", () => {
  it("reads what memory.buffer.byteLength reads, before and after growth", () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 8 })
    const size = memorySize(memory)
    expect(size()).toBe(memory.buffer.byteLength)
    memory.grow(3)
    expect(size()).toBe(4 * 65_536)
    expect(size()).toBe(memory.buffer.byteLength)
    const empty = new WebAssembly.Memory({ initial: 0 })
    expect(memorySize(empty)()).toBe(0)
  })

  it("reads a shared memory through the accessor (the helper imports an unshared one)", () => {
    const shared = new WebAssembly.Memory({ initial: 2, maximum: 4, shared: true })
    const size = memorySize(shared)
    expect(size()).toBe(2 * 65_536)
    shared.grow(1)
    expect(size()).toBe(3 * 65_536)
  })
})
