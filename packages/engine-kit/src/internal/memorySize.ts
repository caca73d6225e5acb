/**
 * Fast reading of a linear memory's size, in bytes (pages × 65 536).
 * `memory.buffer.byteLength` goes through the `buffer` host-API accessor
 * (≈ 15 ns on V8 11); a call reads it in one of two cheaper ways:
 *
 * - an unshared memory: the `ArrayBuffer` seen last is kept
 *   (`keptBytes`; engine-kit core's `sizeBuffer`). Growing an unshared memory — `memory.grow` in the
 *   guest, `Memory.prototype.grow` on the host, at any depth of nested
 *   host calls — detaches its previous buffer (WebAssembly JS API §"Memory
 *   objects", *refresh the memory buffer*), whose `byteLength` then reads 0;
 *   so a kept buffer with a non-zero `byteLength` is the current buffer and
 *   its length the memory's size — a field read, no call (a resizable
 *   buffer, `toResizableBuffer`, grows in place: its length is current too).
 *   A zero length (a detached buffer) reads the accessor again and keeps the
 *   new buffer. The reader of `memory.size` below serves a memory of 0
 *   pages (whose buffer's length is 0 whether detached or not).
 * - a shared memory (its `SharedArrayBuffer`s never detach, so a kept one
 *   can be stale), or an unshared one of 0 pages: a call of a 43–46-byte
 *   WebAssembly helper importing the same memory and returning `memory.size`
 *   (≈ 4 ns, inlined by the JS-to-wasm wrapper), compiled once per thread,
 *   synchronously (`memorySize`); where runtime compilation is forbidden
 *   (workerd) or linking fails, the accessor.
 *
 * @since 0.4.0
 */
import { helperExports, lazyModule, moduleBytes, name, section, uleb } from "./helperModules.js"

/**
 * `(module (import "" "m" (memory <limits>)) (func (export "s") (result i32) memory.size))`:
 * an import of a 32-bit memory with `limits` (§5.3.7), its size in pages.
 */
const helperBytes = (limits: ReadonlyArray<number>): Uint8Array<ArrayBuffer> => {
  const body = [0, 0x3f, 0x00, 0x0b] // no locals; memory.size 0; end
  return moduleBytes(
    section(1, [1, 0x60, 0, 1, 0x7f]), // type: () -> i32
    section(2, [1, ...name(""), ...name("m"), 0x02, ...limits]),
    section(3, [1, 0]),
    section(7, [1, ...name("s"), 0x00, 0]),
    section(10, [1, ...uleb(body.length), ...body])
  )
}

/** The helper for an unshared memory (import: minimum 0, no maximum), compiled on first use; `null` where this host will not compile it. */
export const helperModule = lazyModule(() => helperBytes([0x00, 0]))

/**
 * The helper for a shared memory (import: shared, minimum 0, maximum 65 536
 * pages — the largest a 32-bit memory has, so any shared memory links),
 * compiled on first use; `null` where this host will not compile it.
 */
export const sharedHelperModule = lazyModule(() => helperBytes([0x03, 0, ...uleb(65_536)]))

const PAGE = 65_536

/** True for a shared memory's buffer (a `SharedArrayBuffer`, where the host has them). */
export const isSharedBuffer = (buffer: ArrayBufferLike): boolean =>
  typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer

/**
 * The size in bytes of an unshared memory read through `kept`, the buffer a
 * call last read it through: `kept.byteLength` — or 0 when that cannot tell
 * (no buffer kept, a detached one, a memory of 0 pages): then read the
 * memory's size otherwise (and keep its current buffer). Only for unshared
 * memories (see the module doc).
 */
export const keptBytes = (kept: ArrayBuffer | undefined): number => (kept === undefined ? 0 : kept.byteLength)

/**
 * A reader of `memory`'s size in bytes (what `memory.buffer.byteLength`
 * reads) through the helper that imports it (`helperModule` or
 * `sharedHelperModule`), or the accessor where the helper cannot be made.
 */
export const memorySize = (memory: WebAssembly.Memory): (() => number) => {
  const viaAccessor = () => memory.buffer.byteLength
  const helper = isSharedBuffer(memory.buffer) ? sharedHelperModule : helperModule
  const exports = helperExports(helper, { "": { m: memory } })
  if (exports === null) return viaAccessor
  const s = exports["s"] as () => number
  return () => s() * PAGE
}
