import { describe, expect, it } from "@effect/vitest"
import { dirtyPageMask } from "@agent-runtime/wasm-binary"
import { dirtyAccess, viaAccessor } from "../../src/internal/dirty.js"

describe("dirty-page bitmap access", () => {
  it("the wasm helper and the accessor agree with dirtyPageMask, and both clear the bitmap", () => {
    const samples = [0n, 1n, 1n << 31n, 1n << 32n, 1n << 63n, -1n, 0x8000000180000001n, 0x123456789abcdef0n]
    let x = 0x9e3779b97f4a7c15n
    for (let k = 0; k < 50; k++) {
      x = BigInt.asUintN(64, x * 6364136223846793005n + 1442695040888963407n)
      samples.push(BigInt.asIntN(64, x))
    }
    for (const value of samples) {
      const expected = dirtyPageMask(value)
      for (const make of [dirtyAccess, viaAccessor]) {
        const global = new WebAssembly.Global({ value: "i64", mutable: true }, BigInt.asIntN(64, value))
        const access = make(global)
        expect([access.take(), access.high()]).toEqual([expected.low, expected.high])
        expect(global.value).toBe(0n)
        expect([access.take(), access.high()]).toEqual([0, 0])
      }
    }
  })
})
