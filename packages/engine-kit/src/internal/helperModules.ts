/**
 * The tiny WebAssembly helper modules the engine compiles at run time (fuel
 * counter access, dirty-page bitmap, memory size): their binary encoding
 * (WebAssembly spec §5: LEB128 integers, names, sections) and a lazy,
 * once-per-thread synchronous compile that gives `null` where runtime
 * compilation is forbidden (workerd) or fails — the callers then fall back
 * to the JS API accessors. Dependency-free on purpose: the worker bundle
 * must not pull `@agent-runtime/wasm-binary`.
 *
 * @since 0.4.0
 */

/** An unsigned LEB128 (§5.2.2) of `n` (0 ≤ n < 2³²). */
export const uleb = (n: number): Array<number> => {
  const out: Array<number> = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}

/** A section (§5.5.2): its id, its size, its body. */
export const section = (id: number, body: ReadonlyArray<number>): Array<number> => [id, ...uleb(body.length), ...body]

/** A name (§5.2.4) of ASCII characters. */
export const name = (s: string): Array<number> => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))]

/** A module (§5.5.16): the magic and version 1, then `sections` in order. */
export const moduleBytes = (...sections: ReadonlyArray<ReadonlyArray<number>>): Uint8Array<ArrayBuffer> =>
  new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...sections.flat()])

/** Compiles `bytes()` on first use (synchronously, once); `null` when this host refuses or fails to compile it. */
export const lazyModule = (bytes: () => Uint8Array<ArrayBuffer>): (() => WebAssembly.Module | null) => {
  let module: WebAssembly.Module | null | undefined
  return () => {
    if (module === undefined) {
      try {
        module = new WebAssembly.Module(bytes())
      } catch {
        module = null // runtime compilation forbidden here: the accessor it is
      }
    }
    return module
  }
}

/** The exports of a new instance of `helper()` with `imports`; `null` where it cannot be compiled or instantiated here. */
export const helperExports = (
  helper: () => WebAssembly.Module | null,
  imports: WebAssembly.Imports
): WebAssembly.Exports | null => {
  const module = helper()
  if (module === null) return null
  try {
    return new WebAssembly.Instance(module, imports).exports
  } catch {
    return null
  }
}
