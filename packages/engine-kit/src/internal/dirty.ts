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
 * @since 0.4.0
 */

/** Reads and clears one bitmap. */
export interface DirtyAccess {
  /** Reads the bitmap, clears it, and returns the low 32 bits of the page mask (`high` then holds the rest). */
  readonly take: () => number
  /** The high 32 bits of the page mask of the last `take`. */
  readonly high: () => number
}

const uleb = (n: number): Array<number> => {
  const out: Array<number> = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}
const section = (id: number, body: ReadonlyArray<number>): Array<number> => [id, ...uleb(body.length), ...body]
const name = (s: string): Array<number> => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))]

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
const helperBytes = (): Uint8Array => {
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
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, 0x60, 0, 1, 0x7f]),
    ...section(2, [1, ...name(""), ...name("g"), 0x03, 0x7e, 0x01]),
    ...section(3, [2, 0, 0]),
    ...section(6, [1, 0x7f, 0x01, 0x41, 0, 0x0b]),
    ...section(7, [2, ...name("t"), 0x00, 0, ...name("h"), 0x00, 1]),
    ...section(10, [2, ...uleb(takeBody.length), ...takeBody, ...uleb(highBody.length), ...highBody])
  ])
}

let helper: WebAssembly.Module | null | undefined

const helperModule = (): WebAssembly.Module | null => {
  if (helper === undefined) {
    try {
      helper = new WebAssembly.Module(helperBytes() as Uint8Array<ArrayBuffer>)
    } catch {
      helper = null // runtime compilation forbidden here: the accessor it is
    }
  }
  return helper
}

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
  const module = helperModule()
  if (module === null) return viaAccessor(global)
  let exports: WebAssembly.Exports
  try {
    exports = new WebAssembly.Instance(module, { "": { g: global } }).exports
  } catch {
    return viaAccessor(global)
  }
  const t = exports["t"] as () => number
  const h = exports["h"] as () => number
  return { take: () => t() >>> 0, high: () => h() >>> 0 }
}
