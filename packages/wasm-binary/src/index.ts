/**
 * `@agent-runtime/wasm-binary`: read the WebAssembly binary format (core spec
 * §5) into typed module information, and edit custom sections. Pure: no
 * dependencies and no platform API.
 *
 * @since 0.1.0
 */
export * from "./Types.js"
export { WasmBinaryError, type UnsupportedFeature, type WasmBinaryErrorKind } from "./WasmBinaryError.js"
export type { ReadResult } from "./ReadResult.js"
export {
  functionType,
  readModule,
  type ReadOptions,
  MAX_FUNCTION_LOCALS,
  MAX_MEMORY32_PAGES,
  MAX_MEMORY64_PAGES
} from "./ModuleReader.js"
export { appendCustomSection, customSections, encodeCustomSection, removeCustomSections } from "./CustomSection.js"
export {
  DIRTY_PAGES_EXPORT,
  FUEL_EXPORT,
  FUEL_IMPORT_MODULE,
  FUEL_IMPORT_NAME,
  FUEL_SECTION,
  globalExportName,
  HIDDEN_EXPORT_PREFIX,
  isHiddenExport,
  MEMORY_EXPORT,
  START_EXPORT
} from "./HiddenExports.js"
export { capMemory, type CappedModule, type MemoryCapInfo } from "./MemoryCap.js"
export { planBudget, TABLE_ENTRY_BYTES, type BudgetPlan, type TableCapInfo } from "./TableCap.js"
export { exportState, type StateExport, type StateGlobal, type UnsnapshottableGlobal } from "./StateExport.js"
export {
  decodeCodeSection,
  decodeFunctionBody,
  knownOpcodes,
  opcodeName,
  type FunctionBody,
  type Instruction,
  type LocalDeclaration,
  type Opcode
} from "./Instructions.js"
export {
  dirtyPageMask,
  instrumentDirtyPages,
  type DirtyPagesOptions
} from "./DirtyPages.js"
export { defaultOperatorCost, fuelImports, instrumentFuel, type FuelOptions } from "./Fuel.js"
export { rewriteModule, type RewriteOptions, type RewriteResult } from "./Rewrite.js"
export { DEFAULT_SCRATCH_BYTES, RewriteScratch } from "./RewriteScratch.js"
