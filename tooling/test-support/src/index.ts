/**
 * Test helpers shared by the workspace's test suites.
 *
 * `wat(text)` assembles WebAssembly text format into module bytes with the
 * npm `wabt` package (every feature Node 20 compiles is enabled).
 */
import wabtFactory from "wabt"

type Wabt = Awaited<ReturnType<typeof wabtFactory>>
let wabt: Promise<Wabt> | undefined

const features = {
  exceptions: true,
  mutable_globals: true,
  sat_float_to_int: true,
  sign_extension: true,
  simd: true,
  threads: true,
  multi_value: true,
  tail_call: true,
  bulk_memory: true,
  reference_types: true,
  extended_const: true
}

/** Assembles a WAT module into bytes; throws wabt's error for invalid text. */
export const wat = async (text: string, name = "test.wat"): Promise<Uint8Array> => {
  wabt ??= wabtFactory()
  const w = await wabt
  // bytes, not a JS string: wabt garbles non-ASCII names given as a string
  const module = w.parseWat(name, new TextEncoder().encode(text), features)
  try {
    module.resolveNames()
    // the typings omit validate's feature argument; without it shared memories, atomics,
    // tail calls and exceptions are refused even though parsing enabled them
    ;(module.validate as (f?: typeof features) => void)(features)
    return new Uint8Array(module.toBinary({ log: false, write_debug_names: false }).buffer)
  } finally {
    module.destroy()
  }
}
