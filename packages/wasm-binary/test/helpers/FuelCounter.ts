/**
 * What an engine does for a module whose fuel counter is imported (the fuel
 * rewrite's `FUEL_IMPORT_MODULE`.`FUEL_IMPORT_NAME`, see `instrumentFuel`):
 * give it a counter set to the initial fuel the rewrite recorded in its
 * `FUEL_SECTION`. A fresh counter per instance, so an instance behaves as
 * with a defined counter.
 */
import { FUEL_SECTION, fuelImports } from "../../src/index.js"

/** The initial fuel recorded in `module`'s `FUEL_SECTION`, or `undefined` when its counter is not imported. */
export const importedFuelInitial = (module: WebAssembly.Module): bigint | undefined => {
  const [section] = WebAssembly.Module.customSections(module, FUEL_SECTION)
  return section === undefined ? undefined : new DataView(section).getBigInt64(0, true)
}

/** `imports` plus a fresh counter for a module with an imported fuel counter (else `imports` unchanged). */
export const withFuelCounter = (module: WebAssembly.Module, imports: WebAssembly.Imports = {}): WebAssembly.Imports => {
  const initial = importedFuelInitial(module)
  if (initial === undefined) return imports
  return { ...imports, ...fuelImports(new WebAssembly.Global({ value: "i64", mutable: true }, initial)) }
}

/** `new WebAssembly.Instance(module, imports)` with a fresh counter when the module imports one. */
export const instantiateMetered = (bytes: Uint8Array, imports: WebAssembly.Imports = {}): WebAssembly.Instance => {
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)
  return new WebAssembly.Instance(module, withFuelCounter(module, imports))
}
