/**
 * A small hand-assembled module for the signing tests (until the agent fixtures exist):
 *
 * ```wat
 * (module
 *   (memory (export "memory") 1 16)
 *   (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
 *   (@custom "meta" "hi"))
 * ```
 */
export const addModule = (): Uint8Array =>
  Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // magic, version 1
    0x01,
    0x07,
    0x01,
    0x60,
    0x02,
    0x7f,
    0x7f,
    0x01,
    0x7f, // type: (i32, i32) -> i32
    0x03,
    0x02,
    0x01,
    0x00, // function: type 0
    0x05,
    0x04,
    0x01,
    0x01,
    0x01,
    0x10, // memory: 1..16 pages
    0x07,
    0x10,
    0x02, // export: 2 entries
    0x03,
    0x61,
    0x64,
    0x64,
    0x00,
    0x00, // "add" func 0
    0x06,
    0x6d,
    0x65,
    0x6d,
    0x6f,
    0x72,
    0x79,
    0x02,
    0x00, // "memory" memory 0
    0x0a,
    0x09,
    0x01,
    0x07,
    0x00,
    0x20,
    0x00,
    0x20,
    0x01,
    0x6a,
    0x0b, // code: local.get 0, local.get 1, i32.add
    0x00,
    0x07,
    0x04,
    0x6d,
    0x65,
    0x74,
    0x61,
    0x68,
    0x69 // custom "meta" = "hi"
  ])

interface WebAssemblyLike {
  validate(bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => unknown
  Instance: new (module: unknown) => { exports: Record<string, unknown> }
}

/** The host's `WebAssembly` (declared structurally: the package compiles without DOM/Node typings). */
export const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyLike }).WebAssembly

const g = globalThis as unknown as {
  TextEncoder: new () => { encode(s: string): Uint8Array }
  TextDecoder: new () => { decode(b: Uint8Array): string }
}

export const utf8 = (text: string): Uint8Array => new g.TextEncoder().encode(text)
export const fromUtf8 = (bytes: Uint8Array): string => new g.TextDecoder().decode(bytes)
