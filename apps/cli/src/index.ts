/**
 * `@agent-runtime/cli` — the `agent-runtime` command line as a function.
 *
 * @since 0.1.0
 */
export { ExitCode, type Io, main } from "./Cli.js"
export { describeMemory, describeType, formatBytes } from "./Describe.js"
export * as Progress from "./Progress.js"
export { exitCodeOf, parseDuration, parseSize, parseValue, type RunInput } from "./Run.js"
