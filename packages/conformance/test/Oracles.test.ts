import { describe, expect, it } from "@effect/vitest"
import { memoryOnlyModule, section, SectionId } from "../src/internal/binary.js"
import { SnapshotCodec } from "@agent-runtime/domain"
import { prose, wordStats } from "../src/internal/words.js"

const { crc32 } = SnapshotCodec

describe("oracles", () => {
  it("crc32 matches the IEEE check value", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926)
    expect(crc32(new Uint8Array(0))).toBe(0)
  })

  it("wordStats follows the text agent's rules", () => {
    expect(wordStats(new TextEncoder().encode("The cat, the CAT; a dog42dog"))).toEqual({
      count: 7,
      unique: 4,
      top: "the"
    })
    expect(wordStats(new TextEncoder().encode("b a a b"))).toEqual({ count: 4, unique: 2, top: "b" })
    expect(prose(100, 1)).toBe(prose(100, 1))
    expect(prose(100, 1)).toHaveLength(100)
  })

  it("memoryOnlyModule is a valid module with the asked initial memory", async () => {
    const bytes = memoryOnlyModule(17)
    const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
    const instance = await WebAssembly.instantiate(module)
    expect((instance.exports.memory as WebAssembly.Memory).buffer.byteLength).toBe(17 * 65536)
    expect(section(bytes, SectionId.memory).end).toBeGreaterThan(8)
  })
})
