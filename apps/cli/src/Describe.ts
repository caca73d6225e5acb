/**
 * Text for the types of a module's imports and exports, as `inspect` prints
 * them (WebAssembly core spec §2.3 "Types"; the text-format keywords):
 *
 * - `func add(i32, i32) -> i32`, `func run()`, `func pair() -> (i32, i64)`
 * - `memory 1..16 pages (64 KiB each)`, `memory 2..∞ pages (64 KiB each) shared`
 * - `table funcref 1..∞`
 * - `global mut i32`, `global f64`
 * - `tag (i32)`
 *
 * @since 0.1.0
 */
import type { ExternType, MemoryType, ValueType } from "@agent-runtime/wasm-binary"

const results = (rs: ReadonlyArray<ValueType>): string =>
  rs.length === 0 ? "" : rs.length === 1 ? ` -> ${rs[0]}` : ` -> (${rs.join(", ")})`

const limits = (min: number, max: number | undefined): string => `${min}..${max === undefined ? "∞" : max}`

/** `1..16 pages (64 KiB each)` plus ` shared` / ` i64` flags. */
export const describeMemory = (m: MemoryType): string =>
  `${limits(m.minPages, m.maxPages)} pages (64 KiB each)${m.shared ? " shared" : ""}${m.memory64 ? " i64" : ""}`

/** The type of an import or export named `name`, in the forms listed in the module doc. */
export const describeType = (name: string, type: ExternType): string => {
  switch (type.kind) {
    case "function":
      return `func ${name}(${type.params.join(", ")})${results(type.results)}`
    case "memory":
      return `memory ${describeMemory(type)}`
    case "table":
      return `table ${type.elementType} ${limits(type.min, type.max)}`
    case "global":
      return `global ${type.mutable ? "mut " : ""}${type.valueType}`
    case "tag":
      return `tag (${type.params.join(", ")})`
  }
}

/** `65536` → `64 KiB`, `1048576` → `1 MiB`, `100` → `100 B`. */
export const formatBytes = (bytes: number): string => {
  if (bytes < 1024) return `${bytes} B`
  const units = ["KiB", "MiB", "GiB", "TiB"]
  let value = bytes
  let unit = ""
  for (const u of units) {
    if (value < 1024) break
    value /= 1024
    unit = u
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`
}
