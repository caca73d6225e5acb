/**
 * `@agent-runtime/conformance/binary` — the small WebAssembly binary helpers
 * the suite uses, for tools that prepare what the suite runs on (the edge
 * Worker's build signs `memoryOnlyModule(17)` and `importedMemoryModule()`
 * ahead of time, since workerd cannot compile at run time): hand-assembled
 * modules (`tableBombModule()` too), and just enough of the binary format (core spec §5.5) to find a
 * section's payload (`sections`, `section`, `SectionId`, `readU32`).
 *
 * Pure, no platform API, no test framework (unlike the package's main entry,
 * which imports vitest).
 *
 * @since 0.1.0
 */
export {
  importedMemoryModule,
  memoryOnlyModule,
  readU32,
  section,
  SectionId,
  type SectionRange,
  sections,
  tableBombModule
} from "./internal/binary.js"
