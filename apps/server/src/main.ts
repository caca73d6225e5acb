/**
 * The server's entry point: `agent-runtime-server [flags]` (see
 * `ServerConfig` for flags and environment variables).
 *
 * Prints one JSON line on stdout once it serves —
 * `{"event":"listening","url":…,"hostId":…,"natsSubjectPrefix":…}` — and
 * one when it stopped (`{"event":"stopped","inFlight":0}`); logs go to
 * stderr. SIGINT/SIGTERM start a graceful drain (exit 0 once done); a second
 * signal exits at once (130). Exit 2 for invalid flags, 1 when it cannot
 * start (port taken, NATS unreachable).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import { serve } from "./Server.js"
import { parse, type ServerConfig, ServerConfigInvalid } from "./ServerConfig.js"

const fail = (message: string, code: number): never => {
  process.stderr.write(`agent-runtime-server: ${message}\n`)
  process.exit(code)
}

let config: ServerConfig | undefined
try {
  config = parse(process.argv.slice(2), process.env)
} catch (e) {
  fail(e instanceof ServerConfigInvalid ? e.message : String(e), 2)
}

const program = Effect.gen(function* () {
  const stop = yield* Deferred.make<void>()
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals > 1) process.exit(130)
    process.stderr.write(`agent-runtime-server: ${signal}: draining\n`)
    Deferred.doneUnsafe(stop, Exit.void)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  const inFlight = yield* serve(config!, Deferred.await(stop), (started) =>
    Effect.sync(() => {
      process.stdout.write(JSON.stringify({ event: "listening", ...started }) + "\n")
    })
  )
  process.stdout.write(JSON.stringify({ event: "stopped", inFlight }) + "\n")
  return inFlight
}).pipe(Effect.provideService(Logger.LogToStderr, true))

Effect.runPromiseExit(program).then((exit) => {
  if (Exit.isSuccess(exit)) process.exit(0)
  fail(Cause.pretty(exit.cause), 1)
})
