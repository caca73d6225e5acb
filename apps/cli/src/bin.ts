/**
 * Process entry of `agent-runtime`: runs `main` on `process.argv` with the
 * process's stdout/stderr and sets the exit code.
 *
 * @since 0.1.0
 */
import { main } from "./Cli.js"

process.exitCode = await main(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  progress: process.stderr
})
