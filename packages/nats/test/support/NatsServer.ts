/**
 * The tests' real `nats-server -js` (`@agent-runtime/nats/server`: free port,
 * temporary store, killed at the end and on SIGINT/SIGTERM), and unique names.
 */
export { requireNatsServer, type RunningNatsServer, startNatsServer } from "../../src/NatsServer.js"

let unique = 0
/** A name no other test of this process uses (for buckets and streams). */
export const uniqueName = (prefix: string): string => `${prefix}-${process.pid}-${++unique}`
