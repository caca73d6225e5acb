/**
 * The check of a module's imports against what the host offers an agent,
 * before instantiation (issue 12 item 8): every missing or mismatched import
 * at once, with its module, name, kind and the type the module declares —
 * instead of the engine's first `LinkError`. Values the caller supplies for
 * a memory, table or global import are checked against the import's type
 * (a memory's size in pages of 64 KiB against its limits, a table's length,
 * a global's value type).
 *
 * @since 0.2.0
 */
import type { ExternType, ImportDesc, ValueType } from "@agent-runtime/wasm-binary"
import { forMessage } from "../Ids.js"
import { InstantiationError, type ImportProblem } from "../RuntimeError.js"
import type { HostImports } from "../WasmEngine.js"

const PAGE_BYTES = 65_536

const limits = (min: number, max: number | undefined, unit: string) =>
  max === undefined ? `${min}.. ${unit}` : `${min}..${max} ${unit}`

/** A module's declared import type as text: `(i32) -> (i64)`, `memory 1..16 pages`, `table 2.. funcref`, `global mut i64`. */
export const describeType = (t: ExternType): string => {
  switch (t.kind) {
    case "function":
      return `(${t.params.join(", ")}) -> (${t.results.join(", ")})`
    case "memory":
      return `memory ${limits(t.minPages, t.maxPages, "pages")}${t.shared ? " shared" : ""}${t.memory64 ? " i64" : ""}`
    case "table":
      return `table ${limits(t.min, t.max, t.elementType)}`
    case "global":
      return `global ${t.mutable ? "mut " : ""}${t.valueType}`
    case "tag":
      return `tag (${t.params.join(", ")})`
  }
}

/** Whether a primitive fits a global's value type (a `WebAssembly.Global` object is left to the engine). */
const globalValueProblem = (type: ValueType, value: unknown): string | undefined => {
  if (typeof value === "object" && value !== null) return undefined
  if (type === "i64")
    return typeof value === "bigint" ? undefined : `expected a bigint or a global, got ${forMessage(value)}`
  if (type === "i32" || type === "f32" || type === "f64") {
    return typeof value === "number" ? undefined : `expected a number or a global, got ${forMessage(value)}`
  }
  return undefined
}

/** A length in elements or pages of a memory or table object, when it exposes one. */
const sizeOf = (value: unknown, kind: "memory" | "table"): number | undefined => {
  if (typeof value !== "object" || value === null) return undefined
  if (kind === "table") {
    const length = (value as { readonly length?: unknown }).length
    return typeof length === "number" ? length : undefined
  }
  const bytes = (value as { readonly buffer?: { readonly byteLength?: unknown } }).buffer?.byteLength
  return typeof bytes === "number" ? bytes / PAGE_BYTES : undefined
}

/** What is wrong with `value` offered for `imp` (a caller-supplied value), or `undefined`. */
const valueProblem = (imp: ImportDesc, value: unknown): string | undefined => {
  const t = imp.type
  switch (t.kind) {
    case "function":
      return typeof value === "function" ? undefined : `expected a function, got ${forMessage(value)}`
    case "global":
      return globalValueProblem(t.valueType, value)
    case "memory":
    case "table": {
      const size = sizeOf(value, t.kind)
      if (size === undefined)
        return `expected a WebAssembly.${t.kind === "memory" ? "Memory" : "Table"}, got ${forMessage(value)}`
      const [min, max, unit] = t.kind === "memory" ? [t.minPages, t.maxPages, "pages"] : [t.min, t.max, "elements"]
      if (size < min) return `has ${size} ${unit}, below the import's minimum of ${min}`
      if (max !== undefined && size > max) return `has ${size} ${unit}, above the import's maximum of ${max}`
      return undefined
    }
    case "tag":
      return undefined
  }
}

/**
 * Every import of `imports` the host cannot satisfy from `offered`: missing
 * (a memory may be missing: the engine creates it; `skip` imports are the
 * engine's, e.g. WASI), or offered with a value of the wrong kind or size.
 */
export const importProblems = (
  imports: ReadonlyArray<ImportDesc>,
  offered: HostImports | undefined,
  skip: (imp: ImportDesc) => boolean
): ReadonlyArray<ImportProblem> => {
  const problems: Array<ImportProblem> = []
  for (const imp of imports) {
    if (skip(imp)) continue
    const ns = offered?.[imp.module]
    const value = typeof ns === "object" && ns !== null ? (ns as Record<string, unknown>)[imp.name] : undefined
    if (value === undefined && imp.type.kind === "memory") continue // created by the engine (hostMemory)
    const problem = value === undefined ? "missing" : valueProblem(imp, value)
    if (problem !== undefined) {
      problems.push({
        module: imp.module,
        name: imp.name,
        kind: imp.type.kind,
        expected: describeType(imp.type),
        problem
      })
    }
  }
  return problems
}

/** One `InstantiationError` listing every problem (`missing`), its reason naming each import. */
export const importsError = (agentId: string, problems: ReadonlyArray<ImportProblem>): InstantiationError => {
  const shown = problems.slice(0, 20).map((p) => `"${p.module}"."${p.name}" (${p.kind} ${p.expected}): ${p.problem}`)
  const more = problems.length > shown.length ? `; and ${problems.length - shown.length} more` : ""
  return new InstantiationError({
    reason: `${problems.length} import(s) of agent ${forMessage(agentId)} cannot be satisfied: ${shown.join("; ")}${more}`,
    missing: problems
  })
}
