/**
 * A child process for the crash test: saves `count` snapshots through the
 * SQLite repository, printing `saved <agent>` after each save completes
 * (is acknowledged), then kills itself with SIGKILL — no close, no
 * checkpoint, no finalizers.
 *
 * Usage: node --conditions=@agent-runtime/source --import tsx killedWriter.ts <db path> <count>
 */
import { InstanceRepository } from "@agent-runtime/domain"
import { Fixtures } from "@agent-runtime/repository-contract"
import * as Effect from "effect/Effect"
import { SqliteRepositories } from "../../src/index.js"

const [file, countText] = process.argv.slice(2)
const count = Number(countText)

await Effect.runPromise(
  Effect.gen(function* () {
    const instances = yield* InstanceRepository
    for (let i = 0; i < count; i++) {
      const id = `killed-${i}`
      yield* instances.saveState(Fixtures.snapshot(id).agentId, Fixtures.snapshot(id, { seed: i, invocationCount: i }))
      process.stdout.write(`saved ${id}\n`)
    }
    process.kill(process.pid, "SIGKILL")
    yield* Effect.never
  }).pipe(Effect.provide(SqliteRepositories.layer({ path: file! })))
)
