/**
 * Names of the exports the runtime's rewrites add to a module.
 *
 * They share the prefix `agent-runtime:` — legal in WebAssembly export names
 * (any UTF-8, spec §2.5.10) but never produced by toolchains, which emit
 * identifiers. A rewrite refuses a module that already exports a name with
 * this prefix (typed error), so a hidden export can never collide with the
 * module's own.
 *
 * - `agent-runtime:fuel` — mutable i64 global: fuel left (fuel metering).
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
