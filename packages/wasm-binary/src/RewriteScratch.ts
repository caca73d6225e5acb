/**
 * A reusable output buffer for rewrites whose result is compiled at once
 * (`RewriteOptions.scratch`).
 *
 * A rewrite's result is a fresh buffer the size of the module (1–2 MB for
 * sqlite3 or brotli): allocating it and writing it the first time faults in
 * every page, which on the fuel rewrite of sqlite3 cost about a third of the
 * pass. `WebAssembly.compile(bytes)` and `new WebAssembly.Module(bytes)`
 * copy the bytes when they are called (WebAssembly JS API, `compile` and the
 * `Module` constructor: their first step is "let stableBytes be a copy of the
 * bytes held by the buffer bytes"; `test/RewriteScratch.test.ts` checks it on
 * the host), so a caller that compiles the result right away does not need
 * fresh bytes: it can give the rewrite a scratch buffer that its next
 * rewrite writes again.
 *
 * Shapes: `take(length)` returns the first `length` bytes of the kept
 * buffer (an `ArrayBuffer` grown to 1.25× the largest result asked for, kept
 * up to `maxKeptBytes`); above that limit it returns fresh bytes and keeps
 * nothing. Not thread-safe by construction (no `SharedArrayBuffer`): one
 * scratch per thread, lent to one rewrite + compile at a time.
 *
 * @since 0.1.0
 */

/** Largest buffer a `RewriteScratch` keeps between rewrites by default, in bytes (16 MiB: the fuel output of a ≈ 10 MB module). */
export const DEFAULT_SCRATCH_BYTES = 16 * 1024 * 1024

/** See the module doc. */
export class RewriteScratch {
  private buffer: ArrayBuffer | undefined

  /** @param maxKeptBytes the largest buffer kept between rewrites (bytes); larger results get fresh bytes. */
  constructor(readonly maxKeptBytes: number = DEFAULT_SCRATCH_BYTES) {}

  /**
   * `length` bytes for a rewrite's result: a view of the kept buffer (its
   * old contents: the caller writes every byte), or fresh bytes when
   * `length` exceeds `maxKeptBytes`. The view is valid until the next
   * `take`.
   */
  take(length: number): Uint8Array<ArrayBuffer> {
    if (length > this.maxKeptBytes) return new Uint8Array(length)
    let buffer = this.buffer
    if (buffer === undefined || buffer.byteLength < length) {
      buffer = new ArrayBuffer(Math.min(this.maxKeptBytes, Math.ceil(length * 1.25)))
      this.buffer = buffer
    }
    return new Uint8Array(buffer, 0, length)
  }

  /** Whether `bytes` is a view of the kept buffer (a rewrite of it must not write its output there). */
  holds(bytes: Uint8Array): boolean {
    return this.buffer !== undefined && bytes.buffer === this.buffer
  }

  /** Bytes kept between rewrites (0 before the first `take`). */
  get keptBytes(): number {
    return this.buffer?.byteLength ?? 0
  }
}
