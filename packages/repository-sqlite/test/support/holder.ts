/**
 * A child process that opens a database as a runtime does (the three
 * repositories, its lock), saves one snapshot, prints `open`, and holds the
 * database until it is killed; if the open fails it prints the error to
 * stderr and exits 1 (as the swarm CLI does).
 *
 * Usage: node --conditions=@agent-runtime/source --import tsx holder.ts <db path>
 */
import { InstanceRepository } from "@agent-runtime/domain"
import { Fixtures } from "@agent-runtime/repository-contract"
import * as Effect from "effect/Effect"
import { SqliteRepositories } from "../../src/index.js"

const [file] = process.argv.slice(2)
const held = Fixtures.snapshot("held", { seed: 3 })
const keepAlive = setInterval(() => {}, 1 << 30) // `Effect.never` alone does not keep the event loop alive

const exit = await Effect.runPromise(
  Effect.exit(
    Effect.gen(function* () {
      const instances = yield* InstanceRepository
      yield* instances.saveState(held.agentId, held)
      process.stdout.write("open\n")
      yield* Effect.never
    }).pipe(Effect.provide(SqliteRepositories.layer({ path: file! })))
  )
)
clearInterval(keepAlive)
if (exit._tag === "Failure") {
  process.stderr.write(`holder: ${String(exit.cause)}\n`)
  process.exit(1)
}
