/**
 * The fuel pass's scan compiled to WebAssembly (`assembly/fuelScan.ts`,
 * built by `scripts/build-fuel-scan.mjs` into `FuelScanWasmBytes.ts`): the same
 * per-body scan as `FuelScan.ts`, run over a whole code section in one call.
 * Compiled by the host's own WebAssembly engine it is fast from its first
 * call (the JS scanner runs unoptimised through most of the first module a
 * process rewrites) and avoids the JS scanner's per-opcode table loads and
 * bounds checks.
 *
 * The module (≈ 6.6 KB) is compiled once per process (or worker), lazily
 * and synchronously (`new WebAssembly.Module`); where that throws (no
 * `WebAssembly`, or runtime compilation forbidden: workerd, a CSP without
 * `wasm-unsafe-eval`; a browser's main thread, where Chromium refuses
 * synchronous compiles of modules above 4 KB) the failure is remembered and
 * the caller uses the JS scanner. One instance is kept while its memory stays ≤ 16 MiB (a larger
 * module's code section leaves a fresh instance for the next call).
 *
 * Like the JS scanner it is a fast path: it stops before any body it does
 * not handle and the caller rewrites that body with the JS path (the JS
 * scanner, then the checked decoder: the same bytes or the same typed
 * `WasmBinaryError`), then resumes it after that body. It handles the
 * default costs only (`costs` given: the JS scanner).
 *
 * @internal
 */
import { ByteWriter } from "./ByteWriter.js"
import { BLOCKTYPE1, CONTROL_U32, DEFAULT_SINGLE, KIND, PREFIXED, VALTYPE } from "./FuelScan.js"
import { FUEL_SCAN_WASM } from "./FuelScanWasmBytes.js"

/** The host's `WebAssembly`, as much of it as the scanner needs (declared here: the package is platform-free). */
interface HostWebAssembly {
  readonly Module: new (bytes: Uint8Array) => object
  readonly Instance: new (module: object, imports: object) => { readonly exports: object }
}

/** A `WebAssembly.Memory`. */
interface Memory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}

/** The scanner module's exports (see assembly/fuelScan.ts; addresses are byte offsets in `memory`). */
interface ScanExports {
  readonly memory: Memory
  readonly heapBase: () => number
  readonly tables: () => number
  readonly run: (
    index: number,
    count: number,
    inAt: number,
    inEnd: number,
    params: number,
    outAt: number,
    fuelGlobal: number
  ) => number
  readonly inPosition: () => number
  readonly outPosition: () => number
}

/** The compiled module: undefined before the first try, null where it cannot be compiled here. */
let compiled: object | null | undefined
let live: ScanExports | undefined

/** Memory an instance may keep between calls (bytes); a larger one is dropped after its call. */
const KEEP_MEMORY = 16 * 1024 * 1024
/** The most memory the scan uses (bytes): beyond it (a code section of ≈ 300 MB) the JS scanner runs. */
const MAX_MEMORY = 1024 * 1024 * 1024

/** What the scanner has done in this process (tests read it: which path rewrote which bodies). */
export const wasmScanCounts = { sections: 0, bodies: 0, fallbacks: 0 }

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

/** Decodes standard base64 (with `=` padding), without platform APIs. */
const fromBase64 = (text: string): Uint8Array<ArrayBuffer> => {
  const value = new Uint8Array(128)
  for (let i = 0; i < 64; i++) value[BASE64.charCodeAt(i)] = i
  const chars = text.endsWith("==") ? text.length - 2 : text.endsWith("=") ? text.length - 1 : text.length
  const out = new Uint8Array(Math.floor((chars * 3) / 4))
  let o = 0
  let acc = 0
  let bits = 0
  for (let i = 0; i < chars; i++) {
    acc = (acc << 6) | (value[text.charCodeAt(i)] as number)
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  return out
}

/** The scanner's exports, instantiated and with its tables filled; undefined where it cannot run. */
const scanner = (): ScanExports | undefined => {
  if (live !== undefined) return live
  if (compiled === null) return undefined
  try {
    const host = (globalThis as { readonly WebAssembly?: HostWebAssembly }).WebAssembly
    if (host === undefined) throw new Error("no WebAssembly")
    compiled ??= new host.Module(fromBase64(FUEL_SCAN_WASM))
    const exports = new host.Instance(compiled, {}).exports as ScanExports
    const u8 = new Uint8Array(exports.memory.buffer)
    const t = exports.tables()
    u8.set(KIND, t)
    u8.set(CONTROL_U32, t + 256)
    u8.set(PREFIXED, t + 512)
    u8.set(VALTYPE, t + 1280)
    u8.set(BLOCKTYPE1, t + 1536)
    for (let op = 0; op < 256; op++) u8[t + 1792 + op] = DEFAULT_SINGLE[op] as number
    live = exports
    return live
  } catch {
    compiled = null // no WebAssembly, or runtime compilation forbidden: remembered, the JS scanner runs
    return undefined
  }
}

/**
 * Forgets the scanner (tests): `available: false` makes the next calls behave as where runtime
 * compilation is forbidden; `true` lets the next call compile it again.
 */
export const resetFuelScanWasm = (available: boolean): void => {
  live = undefined
  compiled = available ? undefined : null
}

/** Grows `memory` to at least `bytes`; false when it cannot. */
const ensure = (memory: Memory, bytes: number): boolean => {
  const have = memory.buffer.byteLength
  if (bytes <= have) return true
  if (bytes > MAX_MEMORY) return false
  try {
    memory.grow(Math.ceil((bytes - have) / 65_536))
    return true
  } catch {
    return false
  }
}

/**
 * Rewrites the bodies of the code section whose `count` bodies are at
 * `bytes[codeStart, codeEnd)` (after the section's count). `paramsAt(i)` is
 * body i's parameter count, or -1 when its type is unknown (the JS path
 * reports it). `fallback(i, at, w)` rewrites body i, whose size field is at
 * input offset `at`, with the JS path into `w` (cleared) and returns the
 * input offset after it, or throws its typed error.
 *
 * Returns the section's pieces (`[id, size, count]` then the bodies, a view
 * of the scanner's memory valid until the next call) and the input offset
 * where the bodies ended (the caller checks it is the section's end); or
 * undefined where the scanner cannot run (the caller runs the JS path).
 */
export const rewriteCodeWasm = (
  bytes: Uint8Array,
  codeStart: number,
  codeEnd: number,
  count: number,
  fuelGlobal: number,
  paramsAt: (definedFunction: number) => number,
  fallback: (definedFunction: number, at: number, w: ByteWriter) => number
): { readonly pieces: ReadonlyArray<Uint8Array>; readonly end: number } | undefined => {
  const length = codeEnd - codeStart
  if (count > length || fuelGlobal > 0x7fffffff) return undefined // the JS path refuses it
  const x = scanner()
  if (x === undefined) return undefined
  const memory = x.memory
  // layout: parameter counts (i32 each), the bodies (+16 bytes of zeros: the scan's word reads), the output
  const params = x.heapBase()
  const inStart = (params + 4 * count + 15) & ~15
  const inEnd = inStart + length
  const outStart = (inEnd + 16 + 15) & ~15
  if (!ensure(memory, outStart + 2 * length + 1024)) return undefined
  let u8 = new Uint8Array(memory.buffer)
  const paramCounts = new Int32Array(memory.buffer, params, count)
  for (let i = 0; i < count; i++) paramCounts[i] = paramsAt(i)
  u8.set(bytes.subarray(codeStart, codeEnd), inStart)
  u8.fill(0, inEnd, inEnd + 16)

  let index = 0
  let inAt = inStart
  let outAt = outStart
  let w: ByteWriter | undefined
  let fallbacks = 0
  for (;;) {
    let stop: number
    try {
      stop = x.run(index, count, inAt, inEnd, params, outAt, fuelGlobal)
    } catch {
      // a trap is a scanner bug: the JS path rewrites the whole section (and a fresh instance runs next time)
      live = undefined
      return undefined
    }
    inAt = x.inPosition()
    outAt = x.outPosition()
    if (stop >= count) break
    // body `stop`, at `inAt`: the JS path (the same bytes or the typed error), then the scan resumes after it
    fallbacks++
    w ??= new ByteWriter(256)
    w.setSize(0)
    const next = fallback(stop, inAt - inStart + codeStart, w)
    const out = w.view()
    if (!ensure(memory, outAt + out.length + 1024)) return undefined
    u8 = new Uint8Array(memory.buffer)
    u8.set(out, outAt)
    outAt += out.length
    inAt = next - codeStart + inStart
    index = stop + 1
  }
  u8 = new Uint8Array(memory.buffer)
  if (u8.length > KEEP_MEMORY) live = undefined // this call's view stays valid; the next call gets a small instance
  const body = u8.subarray(outStart, outAt)
  const head = new ByteWriter(16)
  head.u8(0x0a)
  const countWidth = new ByteWriter(8).u32(count).size
  head.u32(countWidth + body.length).u32(count)
  wasmScanCounts.sections++
  wasmScanCounts.bodies += count - fallbacks
  wasmScanCounts.fallbacks += fallbacks
  return { pieces: [head.view(), body], end: inAt - inStart + codeStart }
}
