/**
 * Tampering for the swarm's `--tamper` option: flip one byte of a signed
 * module *outside* its `agent-runtime.signature` section, so the module keeps
 * its (now wrong) signature and verification must refuse it with
 * `InvalidSignature` (spec Invariant 5, "Module Verification").
 *
 * @since 0.1.0
 */
import { readModule } from "@agent-runtime/wasm-binary"

/** The code section's id (WebAssembly spec §5.5.13). */
const CODE_SECTION = 10

/**
 * A copy of `bytes` with one byte flipped (XOR 0x01) in the middle of the
 * code section's payload — or, for a module without code, in the payload of
 * its first non-custom section. Returns the copy and the offset flipped.
 */
export const flipOneByte = (bytes: Uint8Array): { readonly bytes: Uint8Array; readonly offset: number } => {
  const read = readModule(bytes)
  let offset = 8 // first byte after the header: the first section's id
  if (read.ok) {
    const sections = read.value.sections.filter((s) => s.id !== 0 && s.size > 0)
    const target = sections.find((s) => s.id === CODE_SECTION) ?? sections[0]
    if (target !== undefined) offset = target.payloadOffset + Math.floor(target.size / 2)
  }
  const copy = Uint8Array.from(bytes)
  copy[offset] = copy[offset]! ^ 0x01
  return { bytes: copy, offset }
}
