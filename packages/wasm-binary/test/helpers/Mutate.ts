/**
 * Deterministic byte mutations for fuzzing (test only): a seeded PRNG
 * (mulberry32) and the mutations a fuzzer applies to real modules — bit
 * flips, random bytes, truncation, deletion, duplication, insertion, and
 * LEB128-shaped edits.
 */

import type { Prng } from "@agent-runtime/test-support/mutate"

/** The seeded PRNG (mulberry32) the structure-aware fuzzer uses too: one generator for every fuzz test. */
export { prng, type Prng } from "@agent-runtime/test-support/mutate"

const INTERESTING = [0x00, 0x01, 0x0b, 0x40, 0x60, 0x6f, 0x70, 0x7b, 0x7f, 0x80, 0xff]

/** One random mutation of `input` (a new array). Mutations prefer the module's first bytes now and then, where the headers are. */
export const mutate = (
  input: Uint8Array<ArrayBuffer>,
  rng: Prng
): { readonly bytes: Uint8Array<ArrayBuffer>; readonly what: string } => {
  const n = input.length
  const pos = (): number => (rng.next() < 0.3 ? rng.int(Math.min(n, 64)) : rng.int(n))
  const copy = (): Uint8Array<ArrayBuffer> => new Uint8Array(input)
  switch (rng.int(9)) {
    case 0: {
      const b = copy()
      const p = pos()
      b[p] = (b[p] as number) ^ (1 << rng.int(8))
      return { bytes: b, what: `flip bit at ${p}` }
    }
    case 1: {
      const b = copy()
      const p = pos()
      b[p] = rng.int(256)
      return { bytes: b, what: `random byte at ${p}` }
    }
    case 2: {
      const b = copy()
      const p = pos()
      b[p] = INTERESTING[rng.int(INTERESTING.length)] as number
      return { bytes: b, what: `interesting byte at ${p}` }
    }
    case 3: {
      const p = rng.int(n)
      return { bytes: input.slice(0, p), what: `truncate at ${p}` }
    }
    case 4: {
      const p = pos()
      const end = Math.min(n, p + 1 + rng.int(16))
      const b = new Uint8Array(n - (end - p))
      b.set(input.subarray(0, p))
      b.set(input.subarray(end), p)
      return { bytes: b, what: `delete ${end - p} at ${p}` }
    }
    case 5: {
      const p = pos()
      const len = 1 + rng.int(16)
      const chunk = input.subarray(p, p + len)
      const b = new Uint8Array(n + chunk.length)
      b.set(input.subarray(0, p))
      b.set(chunk, p)
      b.set(input.subarray(p), p + chunk.length)
      return { bytes: b, what: `duplicate ${chunk.length} at ${p}` }
    }
    case 6: {
      const p = pos()
      const len = 1 + rng.int(8)
      const b = new Uint8Array(n + len)
      b.set(input.subarray(0, p))
      for (let i = 0; i < len; i++) b[p + i] = rng.int(256)
      b.set(input.subarray(p), p + len)
      return { bytes: b, what: `insert ${len} at ${p}` }
    }
    case 7: {
      // make a LEB128 longer or shorter: set/clear a continuation bit
      const b = copy()
      const p = pos()
      b[p] = (b[p] as number) ^ 0x80
      return { bytes: b, what: `toggle continuation at ${p}` }
    }
    default: {
      // several flips at once
      const b = copy()
      const k = 2 + rng.int(6)
      for (let i = 0; i < k; i++) {
        const p = pos()
        b[p] = rng.int(256)
      }
      return { bytes: b, what: `${k} random bytes` }
    }
  }
}
