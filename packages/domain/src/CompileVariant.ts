/**
 * Compile variants: which rewrite of a module an agent runs, and the compile
 * cache key that names it (DESIGN.md "Compile cache"; the hard-limits
 * rewrites of `@agent-runtime/wasm-binary`).
 *
 * An agent runs its module as loaded, or rewritten with its memory maximum
 * capped to its budget (pages of 64 KiB), the dirty-page write barrier (for
 * engines that track memory for recovery), fuel metering (the counter starts
 * at the agent's `fuel`, so a start function is metered too — deferred: the
 * engine calls it right after instantiation, so running out of fuel there is
 * `FuelExhausted`, not a bare trap), and hidden
 * exports of its mutable state. The runtime applies the rewrite at spawn; the
 * edge platform applies the same function at build time (`agent-runtime
 * bundle`), so both produce the same bytes.
 *
 * @since 0.1.0
 */
import type { RewriteOptions } from "@agent-runtime/wasm-binary"
import { PAGE_BYTES } from "./MemoryBudget.js"

/** The parameters of a rewrite (JSON-friendly: `null` = not applied). */
export interface VariantParams {
  /** Memory 0's maximum in pages of 64 KiB; `null` when not capped (no memory, or caps off). */
  readonly maxMemoryPages: number | null
  /** Initial value of the fuel counter (fuel units); `null` when not metered. */
  readonly fuel: number | null
  /** Internal mutable state exported for complete snapshots. */
  readonly exportState: boolean
  /**
   * The dirty-page write barrier (wasm-binary `DirtyPages.ts`): asked for by
   * an engine that tracks agents' memory page by page for recovery
   * (`EngineCapabilities.dirtyPages`); absent or false when not applied.
   */
  readonly dirtyPages?: boolean
}

/**
 * The rewrite for an agent of `memoryLimit` bytes and `fuel` units on a
 * module with (or without) a memory, under the runtime's limits; `null` when
 * the module is used as loaded.
 */
export const variantParams = (input: {
  readonly hasMemory: boolean
  readonly memoryLimit: number
  readonly fuel?: number | null | undefined
  readonly memoryCap: boolean
  readonly exportState: boolean
  readonly dirtyPages?: boolean | undefined
}): VariantParams | null => {
  const maxMemoryPages = input.memoryCap && input.hasMemory ? Math.floor(input.memoryLimit / PAGE_BYTES) : null
  const fuel = input.fuel ?? null
  const dirtyPages = input.dirtyPages === true
  if (maxMemoryPages === null && fuel === null && !input.exportState && !dirtyPages) return null
  // written out, not spread: made on every spawn (an object spread costs µs on Node 20)
  return dirtyPages
    ? { maxMemoryPages, fuel, exportState: input.exportState, dirtyPages }
    : { maxMemoryPages, fuel, exportState: input.exportState }
}

/**
 * The compile cache key: `<hash>` as loaded, else
 * `<hash>|cap=<pages|->|fuel=<n|->|<state|->`, with `|dirty` appended when
 * the write barrier is on (keys without it are unchanged).
 */
export const variantKey = (moduleHash: string, params: VariantParams | null): string =>
  params === null
    ? moduleHash
    : `${moduleHash}|cap=${params.maxMemoryPages ?? "-"}|fuel=${params.fuel ?? "-"}|${params.exportState ? "state" : "-"}${
        params.dirtyPages === true ? "|dirty" : ""
      }`

/** The `rewriteModule` options of a variant. */
export const rewriteOptions = (params: VariantParams): RewriteOptions => ({
  ...(params.maxMemoryPages === null ? {} : { maxMemoryPages: params.maxMemoryPages }),
  // the start function is deferred (exported, called by the engine): its fuel exhaustion is then recognisable
  ...(params.fuel === null ? {} : { fuel: { initialFuel: BigInt(params.fuel), deferStart: true } }),
  exportState: params.exportState,
  ...(params.dirtyPages === true ? { dirtyPages: true } : {})
})
