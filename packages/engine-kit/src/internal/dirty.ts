/**
 * Reading and clearing the dirty-page bitmap of a module rewritten with the
 * write barrier (wasm-binary `DirtyPages.ts`, `DIRTY_PAGES_EXPORT`: a mutable
 * i64 global, bit k = "a page ≡ k (mod 64) may have been written"). As for
 * the fuel counter (`fuel.ts`), the `WebAssembly.Global` accessor converts
 * through a `bigint`; a tiny WebAssembly helper importing the same global
 * reads it as two i32 halves and clears it in one inlined call. Where
 * runtime compilation is forbidden or fails, the accessor is used.
 *
 * `take` returns the pages to compare as a mask in two 32-bit halves, with
 * the spill of a store into the next page folded in (bit k set when bit k or
 * bit k − 1 mod 64 of the bitmap is): page p is to be compared when bit
 * `p % 64` of the mask is set.
 *
 * `pageChanges` is the snapshot side for an in-thread instance (`core.ts`,
 * `InstanceConfig.dirtyPages`): it reports the pages the barrier marked
 * since its previous report, as views of the memory (a delta save,
 * `WasmInstance.snapshotChanges`), and keeps no page between reports.
 *
 * @since 0.4.0
 */
import { helperExports, lazyModule, moduleBytes, name, section, uleb } from "./helperModules.js"
import { isZeroPage, PAGE_BYTES } from "./pages.js"

/** Reads and clears one bitmap. */
export interface DirtyAccess {
  /** Reads the bitmap, clears it, and returns the low 32 bits of the page mask (`high` then holds the rest). */
  readonly take: () => number
  /** The high 32 bits of the page mask of the last `take`. */
  readonly high: () => number
}

/**
 * `(module (import "" "g" (global $g (mut i64))) (global $h (mut i32) (i32.const 0))
 *   (func (export "t") (result i32) (local $lo i32) (local $hi i32)
 *     ;; lo/hi halves of the bitmap, then the bitmap cleared
 *     (local.set $lo (i32.wrap_i64 (global.get $g)))
 *     (local.set $hi (i32.wrap_i64 (i64.shr_u (global.get $g) (i64.const 32))))
 *     (global.set $g (i64.const 0))
 *     ;; mask = bitmap | rotl(bitmap, 1)
 *     (global.set $h (i32.or (i32.or (local.get $hi) (i32.shl (local.get $hi) (i32.const 1)))
 *                            (i32.shr_u (local.get $lo) (i32.const 31))))
 *     (i32.or (i32.or (local.get $lo) (i32.shl (local.get $lo) (i32.const 1)))
 *             (i32.shr_u (local.get $hi) (i32.const 31))))
 *   (func (export "h") (result i32) (global.get $h)))`
 */
const helperBytes = (): Uint8Array<ArrayBuffer> => {
  // biome-ignore format: one line per instruction group
  const takeBody = [
    1, 2, 0x7f, // 2 × i32 locals
    0x23, 0, 0xa7, 0x21, 0, // lo
    0x23, 0, 0x42, 32, 0x88, 0xa7, 0x21, 1, // hi
    0x42, 0, 0x24, 0, // clear
    0x20, 1, 0x20, 1, 0x41, 1, 0x74, 0x72, 0x20, 0, 0x41, 31, 0x76, 0x72, 0x24, 1, // $h
    0x20, 0, 0x20, 0, 0x41, 1, 0x74, 0x72, 0x20, 1, 0x41, 31, 0x76, 0x72, // result
    0x0b
  ]
  const highBody = [0, 0x23, 1, 0x0b]
  return moduleBytes(
    section(1, [1, 0x60, 0, 1, 0x7f]),
    section(2, [1, ...name(""), ...name("g"), 0x03, 0x7e, 0x01]),
    section(3, [2, 0, 0]),
    section(6, [1, 0x7f, 0x01, 0x41, 0, 0x0b]),
    section(7, [2, ...name("t"), 0x00, 0, ...name("h"), 0x00, 1]),
    section(10, [2, ...uleb(takeBody.length), ...takeBody, ...uleb(highBody.length), ...highBody])
  )
}

/** The helper, compiled on first use; `null` where this host will not compile it. */
export const helperModule = lazyModule(helperBytes)

/** The accessor path (any host). */
export const viaAccessor = (global: WebAssembly.Global): DirtyAccess => {
  let high = 0
  return {
    take: () => {
      const v = global.value as bigint
      global.value = 0n
      const lo = Number(BigInt.asUintN(32, v))
      const hi = Number(BigInt.asUintN(32, v >> 32n))
      high = (hi | (hi << 1) | (lo >>> 31)) >>> 0
      return (lo | (lo << 1) | (hi >>> 31)) >>> 0
    },
    high: () => high
  }
}

/** Fast access to `global` (the mutable i64 bitmap); the accessor where the helper cannot be made. */
export const dirtyAccess = (global: WebAssembly.Global): DirtyAccess => {
  const exports = helperExports(helperModule, { "": { g: global } })
  if (exports === null) return viaAccessor(global)
  const t = exports["t"] as () => number
  const h = exports["h"] as () => number
  return { take: () => t() >>> 0, high: () => h() >>> 0 }
}

// -----------------------------------------------------------------------------
// snapshots through the barrier (in-thread instances)
// -----------------------------------------------------------------------------

/** One non-zero page: its index (pages of 64 KiB) and its bytes (a copy in a snapshot, a view of the memory in `markedPages`). */
export interface SnapshotPage {
  readonly index: number
  readonly data: Uint8Array
}

/**
 * The non-zero pages of `buffer` (a multiple of 64 KiB), each a fresh copy,
 * in increasing index: a zero scan of every page (a snapshot without the barrier).
 */
export const nonZeroPages = (buffer: ArrayBuffer | SharedArrayBuffer): Array<SnapshotPage> => {
  const pages: Array<SnapshotPage> = []
  const words = new Uint32Array(buffer)
  const count = buffer.byteLength / PAGE_BYTES
  for (let p = 0; p < count; p++) if (!isZeroPage(words, p)) pages.push({ index: p, data: copy(buffer, p) })
  return pages
}

/** A copy of page `p` of `buffer`, its own 64 KiB `ArrayBuffer` (one block for a snapshot's pages measured no faster). */
const copy = (buffer: ArrayBuffer | SharedArrayBuffer, p: number): Uint8Array =>
  new Uint8Array(buffer, p * PAGE_BYTES, PAGE_BYTES).slice()

/** What `markedPages` reports: the marked pages that are not zero (views of the memory) and those that are. */
export interface MarkedPages {
  readonly pages: ReadonlyArray<SnapshotPage>
  readonly zeroed: ReadonlyArray<number>
}

const NOTHING_MARKED: MarkedPages = Object.freeze({ pages: Object.freeze([]), zeroed: Object.freeze([]) })

/**
 * The pages of `buffer` (a multiple of 64 KiB) that `low`/`high` (a
 * `DirtyAccess` mask: page p ↔ bit p % 64) mark, in increasing index:
 * `pages` those that are not zero — each a VIEW of `buffer`, not a copy —,
 * `zeroed` the indexes of those that are. Nothing is copied or allocated
 * per page but its view.
 */
export const markedPages = (buffer: ArrayBuffer | SharedArrayBuffer, low: number, high: number): MarkedPages => {
  if (low === 0 && high === 0) return NOTHING_MARKED
  const pages: Array<SnapshotPage> = []
  const zeroed: Array<number> = []
  const words = new Uint32Array(buffer)
  const count = buffer.byteLength / PAGE_BYTES
  for (let p = 0; p < count; p++) {
    if (((((p & 63) < 32 ? low : high) >>> (p & 31)) & 1) === 0) continue
    if (isZeroPage(words, p)) zeroed.push(p)
    else pages.push({ index: p, data: new Uint8Array(buffer, p * PAGE_BYTES, PAGE_BYTES) })
  }
  return { pages, zeroed }
}

/**
 * The changes of one instance's linear memory through its write barrier
 * (the snapshot side of an in-thread instance, `core.ts` `changes`): each
 * `take` reads and clears the bitmap and reports the pages marked since the
 * previous `take` (`markedPages`: views, no copies — nothing is kept between
 * calls but the bitmap). It returns `undefined` — the caller then takes a
 * whole snapshot as its base — for the first `take`, the first after
 * `invalidate`, one asked to `restart`, and one that finds the memory
 * smaller than before (it never shrinks but through a restore). The owner
 * calls `invalidate` whenever memory may have changed other than by the
 * guest's own stores since the last `take` — a failed call (a trap may
 * unwind frames before they publish their bits), a host write, a restore —
 * and must be the bitmap's only reader.
 */
export interface PageChanges {
  /** The next `take` reports no changes (`undefined`): its caller takes a whole snapshot. */
  readonly invalidate: () => void
  /** The pages of `buffer` (the instance's memory) marked since the previous `take`, or `undefined` (see above). */
  readonly take: (buffer: ArrayBuffer | SharedArrayBuffer, restart: boolean) => MarkedPages | undefined
}

/** `PageChanges` over the bitmap `global` (`DIRTY_PAGES_EXPORT`), cleared at every `take`. */
export const pageChanges = (global: WebAssembly.Global): PageChanges => {
  const access = dirtyAccess(global)
  let trusted = false // false: the next take has no base
  let lastBytes = 0
  return {
    invalidate: () => {
      trusted = false
    },
    take: (buffer, restart) => {
      const low = access.take() // clears the bitmap in any case
      const high = access.high()
      const bytes = buffer.byteLength
      const base = trusted && !restart && bytes >= lastBytes
      trusted = true
      lastBytes = bytes
      return base ? markedPages(buffer, low, high) : undefined
    }
  }
}
