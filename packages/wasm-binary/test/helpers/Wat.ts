/**
 * Assembles WebAssembly text with wabt (test only), with every feature Node
 * 20 ships enabled.
 */
import wabt from "wabt"

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
  memory64: true,
  extended_const: true
} as const

let instance: Awaited<ReturnType<typeof wabt>> | undefined

/** The binary of a WAT module. */
export const wat = async (text: string): Promise<Uint8Array<ArrayBuffer>> => {
  instance ??= await wabt()
  const m = instance.parseWat("test.wat", text, features)
  try {
    return new Uint8Array(m.toBinary({}).buffer)
  } finally {
    m.destroy()
  }
}
