/** The server tests' real `nats-server -js`: `@agent-runtime/nats/server` (free port, temporary store, killed at the end and on SIGINT/SIGTERM). */
export { type RunningNatsServer, startNatsServer } from "@agent-runtime/nats/server"
