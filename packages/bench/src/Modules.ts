/**
 * The modules the suites run: tiny WAT modules (assembled with wabt through
 * `wat()`), the signed fixture agents, a real 1–5 MB module from npm, and a
 * unique-bytes helper so "cold" loads are really cold.
 *
 * @since 0.1.0
 */
import { appendCustomSection } from "@agent-runtime/wasm-binary"
import { wat } from "@agent-runtime/test-support"

/** A module with one page of memory (or `pages`) and the calls the invoke suite needs. */
export const callsWat = (pages: number): string => `(module
  (memory (export "memory") ${pages})
  (func (export "noop"))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add_i64") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  ;; reads the last byte of [ptr, ptr + len): the host wrote the bytes, the guest sees them
  (func (export "last_byte") (param i32 i32) (result i32)
    (i32.load8_u (i32.sub (i32.add (local.get 0) (local.get 1)) (i32.const 1))))
  (func (export "_health_check") (result i32) (i32.const 0)))`

/** A module with `pages` pages of memory; `fill(seed)` writes every byte so snapshots copy every page. */
export const stateWat = (pages: number): string => `(module
  (memory (export "memory") ${pages})
  (global $calls (mut i32) (i32.const 0))
  (func (export "fill") (param $seed i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.mul (memory.size) (i32.const 65536))))
      (i32.store (local.get $i) (i32.add (local.get $seed) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))
  (func (export "calls") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (global.get $calls)))`

/** A compute loop for fuel metering: `sum(n)` = Σ i·i mod 2^32 for i < n. */
export const computeWat = `(module
  (func (export "sum") (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $i) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $acc)))`

/** The tiny module of the load suite. */
export const tinyWat = `(module (func (export "noop")))`

/** Assembles WAT. */
export const assemble = (text: string, name = "bench.wat"): Promise<Uint8Array> => wat(text, name)

/**
 * The same module with a unique `bench.nonce` custom section appended:
 * different bytes (a different hash and no V8 compile-cache hit), the same
 * code. Custom sections are ignored by compilation (core spec §5.5.3).
 */
export const uniqueBytes = (bytes: Uint8Array, nonce: number): Uint8Array<ArrayBuffer> => {
  const r = appendCustomSection(bytes, "bench.nonce", new TextEncoder().encode(String(nonce)))
  if (!r.ok) throw new Error(`cannot append a custom section: ${r.error.reason} at byte ${r.error.offset}`)
  return new Uint8Array(r.value)
}

let nonce = 0
/** A fresh nonce for `uniqueBytes` (a counter: deterministic). */
export const nextNonce = (): number => ++nonce
