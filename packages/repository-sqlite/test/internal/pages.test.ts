/**
 * The page forms of the paged layout (`src/internal/pages.ts`) against
 * reference implementations written here: fills (with the one-word fast
 * path), the `unchanged` compare, and patches (schema version 6) — a page
 * is always its row's page with its patch written over it, byte for byte.
 * Seeded random pages (`@agent-runtime/test-support/mutate`'s prng).
 */
import { describe, expect, it } from "@effect/vitest"
import { prng } from "@agent-runtime/test-support/mutate"
import * as Pages from "../../src/internal/pages.js"

const PAGE = 65_536

/** Reference fills: (count, word) per run of one word; `undefined` past 512 runs. */
const referenceFills = (page: Uint8Array): Array<[number, number]> | undefined => {
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE / 4)
  const runs: Array<[number, number]> = []
  for (const w of words) {
    const last = runs[runs.length - 1]
    if (last !== undefined && last[1] === w) last[0]++
    else runs.push([1, w])
  }
  return runs.length > 512 ? undefined : runs
}

const pairsOf = (stored: Uint8Array): Array<[number, number]> => {
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength)
  const out: Array<[number, number]> = []
  for (let at = 0; at < stored.length; at += 8) out.push([view.getUint32(at, true), view.getUint32(at + 4, true)])
  return out
}

/** A random page of one of the shapes the swarm's agents leave: one word, one word but one, a few fills, sparse text, random. */
const randomPage = (next: (n: number) => number): Uint8Array => {
  const page = new Uint8Array(PAGE)
  const words = new Uint32Array(page.buffer)
  const word = next(4) === 0 ? 0x01010101 * next(256) : next(0x1_0000_0000)
  switch (next(5)) {
    case 0:
      words.fill(word)
      break
    case 1: // one word but one, at the start, the end or anywhere
      words.fill(word)
      words[[0, words.length - 1, next(words.length)][next(3)]!] = word ^ (1 + next(255))
      break
    case 2:
      for (let w = 0; w < words.length; ) {
        const n = 1 + next(2000)
        words.fill(next(3) === 0 ? 0 : next(0x1_0000_0000), w, w + n)
        w += n
      }
      break
    case 3: {
      const at = next(PAGE - 14_000)
      for (let k = 0; k < 13_000; k++) page[at + k] = 32 + next(90)
      break
    }
    default:
      for (let k = 0; k < PAGE; k++) page[k] = next(256)
  }
  return page
}

/** `stored`'s runs (u32 offset, u32 length, bytes) written over a copy of `page`, read independently. */
const withRuns = (page: Uint8Array, stored: Uint8Array): Uint8Array => {
  const out = page.slice()
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength)
  for (let at = 0; at < stored.length; ) {
    const from = view.getUint32(at, true)
    const length = view.getUint32(at + 4, true)
    out.set(stored.subarray(at + 8, at + 8 + length), from)
    at += 8 + length
  }
  return out
}

const decoded = (row: Pages.PageWrite): Uint8Array =>
  Pages.readPages(
    [{ page_index: row.index, hash: row.hash, compressed: row.compressed, data: row.data }],
    1,
    (row.index + 1) * PAGE
  )[0]!.data

describe("pages", () => {
  it("fills (one-word fast path included) equal the reference; unchanged says true for the page, false after any one-byte change", () => {
    const next = prng(7).int
    for (let i = 0; i < 300; i++) {
      const page = randomPage(next)
      const fills = Pages.fills(page)
      const reference = referenceFills(page)
      expect(fills === undefined ? undefined : pairsOf(fills)).toEqual(reference)
      const row = Pages.storedPage(0, page, true)
      expect(Buffer.compare(Buffer.from(decoded(row)), Buffer.from(page))).toBe(0)
      expect(Pages.unchanged(page, row)).toBe(true)
      const changed = page.slice()
      const at = next(PAGE)
      changed[at] = changed[at]! ^ (1 + next(255))
      expect(Pages.unchanged(changed, row)).toBe(false)
    }
  })

  it("a patch against a run-form row, written over the row's page, is the page; empty for the row's page; undefined past its limit", () => {
    const next = prng(11).int
    let patches = 0
    for (let i = 0; i < 300; i++) {
      const base = randomPage(next)
      const row = Pages.storedPage(3, base, true)
      if (!Pages.patchable(row.compressed)) continue
      expect(Pages.patchAgainst(base, row, Pages.PATCH_LIMIT)!.length).toBe(0)
      const page = base.slice()
      for (let k = 0, n = next(4) === 0 ? 3000 : 1 + next(40); k < n; k++) page[next(PAGE)] = next(256)
      const limit = next(2) === 0 ? Pages.PATCH_LIMIT : Pages.patchLimit(row.data.length)
      const patch = Pages.patchAgainst(page, row, limit)
      if (patch === undefined) {
        // past the limit: the reference patch (every differing word, gaps under 4 words inside) is larger
        expect(Pages.patchAgainst(page, row, PAGE * 2)!.length).toBeGreaterThan(limit)
        continue
      }
      patches++
      expect(patch.length).toBeLessThanOrEqual(limit)
      expect(Buffer.compare(Buffer.from(withRuns(base, patch)), Buffer.from(page))).toBe(0)
      // the adapter's own reader agrees
      expect(Buffer.compare(Buffer.from(Pages.writeRuns(base.slice(), 3, patch)), Buffer.from(page))).toBe(0)
      // and a load of the row with its patch gives the page back
      const loaded = Pages.readPages(
        [{ page_index: 3, hash: row.hash, compressed: row.compressed, data: row.data }],
        1,
        4 * PAGE,
        [{ page_index: 3, hash: Pages.storedHash(patch, 3), data: patch }],
        1
      )
      expect(Buffer.compare(Buffer.from(loaded[0]!.data), Buffer.from(page))).toBe(0)
    }
    expect(patches).toBeGreaterThan(30)
  })
})
