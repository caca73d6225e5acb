/**
 * Names of the exports the runtime's rewrites add to a module.
 *
 * They share the prefix `agent-runtime:` — legal in WebAssembly export names
 * (any UTF-8, spec §2.5.10) but never produced by toolchains, which emit
 * identifiers. A rewrite refuses a module that already exports a name with
 * this prefix (typed error), so a hidden export can never collide with the
 * module's own.
 *
 * - `agent-runtime:fuel` — mutable i64 global: fuel left (fuel metering);
 *   in a module that defines no globals of its own the counter is imported
 *   (`FUEL_IMPORT_MODULE` / `FUEL_IMPORT_NAME`) and this export re-exports
 *   the import (the very same `WebAssembly.Global`).
 * - `agent-runtime:memory` — the module's memory 0, when it did not export it.
 * - `agent-runtime:global:<index>` — an internal mutable global (complete snapshots).
 * - `agent-runtime:start` — the start function, when fuel metering defers it
 *   (`FuelOptions.deferStart`): the engine calls it right after instantiation.
 * - `agent-runtime:dirty-pages` — mutable i64 global: the dirty-page bitmap of
 *   the write barrier (`DirtyPages.ts`, `instrumentDirtyPages`).
 *
 * @since 0.1.0
 */

/** Prefix of every export added by a rewrite. */
export const HIDDEN_EXPORT_PREFIX = "agent-runtime:"
/** The fuel counter: a mutable i64 global; the guest traps (`unreachable`) when it drops below zero. */
export const FUEL_EXPORT = "agent-runtime:fuel"
/**
 * The fuel counter's import, `(import "agent-runtime" "fuel" (global (mut i64)))`,
 * in a module the fuel rewrite gave an imported counter (see `instrumentFuel`):
 * the engine supplies one `WebAssembly.Global` shared by every instance on its
 * thread. The module name is reserved: the fuel rewrite refuses a module that
 * imports anything from it.
 */
export const FUEL_IMPORT_MODULE = "agent-runtime"
/** The field name of the fuel counter's import (see `FUEL_IMPORT_MODULE`). */
export const FUEL_IMPORT_NAME = "fuel"
/**
 * Custom section added with an imported fuel counter: its payload is the
 * counter's initial fuel (`FuelOptions.initialFuel`) as 8 bytes, a
 * little-endian two's-complement i64. The engine sets the shared counter to
 * it before instantiating (a start function runs during instantiation) and
 * before a deferred start function, as a defined counter would start with it.
 */
export const FUEL_SECTION = "agent-runtime:fuel"
/** The module's start function, exported instead of run at instantiation (fuel metering, `deferStart`). */
export const START_EXPORT = "agent-runtime:start"
/** Memory 0, exported by the rewrite when the module keeps it internal. */
export const MEMORY_EXPORT = "agent-runtime:memory"
/** The write barrier's dirty-page bitmap: a mutable i64 global, bit k = a page ≡ k (mod 64) may have been written. */
export const DIRTY_PAGES_EXPORT = "agent-runtime:dirty-pages"
/** Export name of an internal mutable global with global index `index`. */
export const globalExportName = (index: number): string => `agent-runtime:global:${index}`
/** Whether an export name is one of the runtime's hidden exports. */
export const isHiddenExport = (name: string): boolean => name.startsWith(HIDDEN_EXPORT_PREFIX)
