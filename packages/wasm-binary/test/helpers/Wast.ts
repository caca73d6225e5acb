/**
 * A small reader of the WebAssembly script format (`.wast`, the spec test
 * suite's format: spec interpreter/README.md "Scripts"), enough to extract
 * its commands for the spec-suite test: modules (text, `binary`, `quote`),
 * `register`, actions (`invoke`, `get`) and assertions (`assert_return`,
 * `assert_trap`, `assert_exhaustion`, `assert_exception`,
 * `assert_malformed`, `assert_invalid`, `assert_unlinkable`).
 *
 * Text modules are kept as source text (a slice of the script) for wabt to
 * assemble; `binary` modules are decoded from their string literals.
 */

/** An S-expression of the script: a list (with its source range), an atom, or a string literal (raw bytes). */
export type SExpr =
  | { readonly kind: "list"; readonly items: ReadonlyArray<SExpr>; readonly start: number; readonly end: number }
  | { readonly kind: "atom"; readonly text: string }
  | { readonly kind: "string"; readonly bytes: Uint8Array }

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
const isDelimiter = (c: number): boolean => isSpace(c) || c === 0x28 || c === 0x29 || c === 0x22

const hex = (c: number): number => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  return -1
}

/** Parses a whole script (UTF-8 source) into its top-level S-expressions. */
export const parseSExprs = (source: string): Array<SExpr> => {
  const src = Buffer.from(source, "utf8")
  const text = src.toString("latin1") // byte offsets == string offsets
  let i = 0
  const fail = (message: string): never => {
    throw new Error(`wast: ${message} at byte ${i}`)
  }
  const skipSpace = (): void => {
    for (;;) {
      const c = src[i]
      if (c === undefined) return
      if (isSpace(c)) i++
      else if (c === 0x3b && src[i + 1] === 0x3b) {
        while (i < src.length && src[i] !== 0x0a) i++
      } else if (c === 0x28 && src[i + 1] === 0x3b) {
        let depth = 0
        do {
          if (i >= src.length) fail("unterminated block comment")
          if (src[i] === 0x28 && src[i + 1] === 0x3b) {
            depth++
            i += 2
          } else if (src[i] === 0x3b && src[i + 1] === 0x29) {
            depth--
            i += 2
          } else i++
        } while (depth > 0)
      } else return
    }
  }
  const string = (): SExpr => {
    i++ // opening quote
    const out: Array<number> = []
    for (;;) {
      const c = src[i++]
      if (c === undefined) fail("unterminated string")
      if (c === 0x22) break
      if (c !== 0x5c) {
        out.push(c as number)
        continue
      }
      const e = src[i++] as number
      const h1 = hex(e)
      const h2 = hex(src[i] ?? -1)
      if (h1 >= 0 && h2 >= 0) {
        out.push(h1 * 16 + h2)
        i++
      } else if (e === 0x6e) out.push(0x0a)
      else if (e === 0x74) out.push(0x09)
      else if (e === 0x72) out.push(0x0d)
      else if (e === 0x75) {
        // \u{hex}
        i++ // {
        let cp = 0
        while (src[i] !== 0x7d) cp = cp * 16 + hex(src[i++] as number)
        i++
        out.push(...Buffer.from(String.fromCodePoint(cp), "utf8"))
      } else out.push(e) // \" \' \\
    }
    return { kind: "string", bytes: Uint8Array.from(out) }
  }
  const expr = (): SExpr => {
    const c = src[i]
    if (c === 0x28) {
      const start = i++
      const items: Array<SExpr> = []
      for (;;) {
        skipSpace()
        if (i >= src.length) fail("unterminated list")
        if (src[i] === 0x29) {
          i++
          return { kind: "list", items, start, end: i }
        }
        items.push(expr())
      }
    }
    if (c === 0x22) return string()
    const start = i
    while (i < src.length && !isDelimiter(src[i] as number) && !(src[i] === 0x3b && src[i + 1] === 0x3b)) i++
    if (i === start) fail(`unexpected character ${String.fromCharCode(c ?? 0)}`)
    return { kind: "atom", text: text.slice(start, i) }
  }
  const out: Array<SExpr> = []
  for (;;) {
    skipSpace()
    if (i >= src.length) return out
    out.push(expr())
  }
}

/** The head keyword of a list (`module`, `assert_return`, …), or undefined. */
export const head = (e: SExpr | undefined): string | undefined =>
  e?.kind === "list" && e.items[0]?.kind === "atom" ? e.items[0].text : undefined

/** A module of the script. */
export type WastModule =
  | {
      readonly form: "binary"
      readonly bytes: Uint8Array
      readonly id: string | undefined
      readonly definition: boolean
    }
  | { readonly form: "text"; readonly text: string; readonly id: string | undefined; readonly definition: boolean }
  /** `(module quote "…")`: text that the spec asks to be parsed from strings. */
  | { readonly form: "quote"; readonly text: string; readonly id: string | undefined; readonly definition: boolean }
  /** `(module instance $i $m)`: a new instance of an earlier module definition. */
  | { readonly form: "instance"; readonly id: string | undefined; readonly of: string | undefined }

const concat = (parts: ReadonlyArray<SExpr>): Uint8Array => {
  const chunks = parts.flatMap((p) => (p.kind === "string" ? [p.bytes] : []))
  return Buffer.concat(chunks)
}

/** Decodes a `(module …)` list; `source` is the script text the list's offsets refer to (as latin1 bytes). */
export const toModule = (e: SExpr, source: Buffer): WastModule => {
  if (e.kind !== "list") throw new Error("not a module")
  let k = 1
  let definition = false
  let id: string | undefined
  const atom = (n: number): string | undefined => {
    const x = e.items[n]
    return x?.kind === "atom" ? x.text : undefined
  }
  if (atom(k) === "instance") {
    return { form: "instance", id: atom(k + 1), of: atom(k + 2) }
  }
  if (atom(k) === "definition") {
    definition = true
    k++
  }
  if (atom(k)?.startsWith("$")) id = atom(k++)
  if (atom(k) === "binary") return { form: "binary", bytes: concat(e.items.slice(k + 1)), id, definition }
  if (atom(k) === "quote") {
    return {
      form: "quote",
      text: `(module ${Buffer.from(concat(e.items.slice(k + 1))).toString("utf8")})`,
      id,
      definition
    }
  }
  let text = source.subarray(e.start, e.end).toString("utf8")
  if (definition) text = text.replace(/^\(module\s+definition/, "(module")
  return { form: "text", text, id, definition }
}

/** Reads a script file's commands. */
export const readScript = (source: string): { readonly commands: ReadonlyArray<SExpr>; readonly bytes: Buffer } => ({
  commands: parseSExprs(source),
  bytes: Buffer.from(source, "utf8")
})
