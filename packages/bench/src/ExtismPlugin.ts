/**
 * A minimal Extism plugin written in WAT against the Extism plugin ABI: the
 * kernel functions imported from `"extism:host/env"` (i64 offsets into the
 * host-managed memory: `input_length() -> i64`, `input_load_u8(i64) -> i32`,
 * `input_load_u64(i64) -> i64`, `alloc(i64) -> i64`, `store_u8(i64, i32)`,
 * `store_u64(i64, i64)`, `output_set(i64, i64)`), and exports `() -> i32`
 * returning 0 for success — the shape of extism's Rust PDK `extern "C"`
 * block and of `@extism/extism`'s `CallContext`.
 *
 * - `noop`: returns 0, no output;
 * - `echo`: copies the input to a fresh block, 8 bytes at a time then byte
 *   by byte (as the PDKs do), and sets it as the output.
 *
 * @since 0.1.0
 */
import { assemble } from "./Modules.js"

export const extismPluginWat = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "noop") (result i32) (i32.const 0))
  (func (export "echo") (result i32) (local $n i64) (local $out i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $out (call $alloc (local.get $n)))
    (block $words_done (loop $words
      (br_if $words_done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $n)))
      (call $store_u64 (i64.add (local.get $out) (local.get $i)) (call $input_load_u64 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $words)))
    (block $bytes_done (loop $bytes
      (br_if $bytes_done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $out) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $bytes)))
    (call $output_set (local.get $out) (local.get $n))
    (i32.const 0)))`

/** The plugin's bytes. */
export const extismPlugin = (): Promise<Uint8Array> => assemble(extismPluginWat, "extism-plugin.wat")
