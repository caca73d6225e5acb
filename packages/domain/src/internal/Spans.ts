/**
 * The spans of `AgentRuntime`'s public operations: `AgentRuntime.<op>`,
 * made once and entered per call, when a tracing backend is installed (the
 * `Tracer` reference is not Effect's `nativeTracer`). With the native tracer
 * nothing can observe a span, so none is made: a span costs a few µs, more
 * than `invoke`'s synchronous fast path itself (Effect documents comparing
 * the active tracer with `nativeTracer` for this).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Tracer from "effect/Tracer"

/** Whether a tracing backend is installed for this fiber. */
export const tracing = (fiber: Fiber.Fiber<unknown, unknown>): boolean =>
  fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer

/** Runs an operation in the span `AgentRuntime.<name>` when `tracing`. */
const traced = (name: string) => {
  const span = Effect.withSpan(`AgentRuntime.${name}`)
  return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withFiber((fiber) => (tracing(fiber) ? span(effect) : effect))
}

const names = [
  "loadModule",
  "spawnAgent",
  "start",
  "pause",
  "resume",
  "stop",
  "setCritical",
  "prepare",
  "revokeImport",
  "readMemory",
  "writeMemory",
  "evictAgent",
  "handleMemoryPressure",
  "checkHealth",
  "runGc",
  "snapshot",
  "restore",
  "restoreAll",
  "saveAll",
  "recordMetrics",
  "shutdown"
] as const

/**
 * The span wrapper of each public operation but `invoke` (the reads —
 * `getModule`, `agent`, `agents`, `status`, `stats`, `getHealth`, `needsGc`,
 * `startRestore`, `events` — have none: they change nothing and are polled).
 */
export const op = Object.fromEntries(names.map((name) => [name, traced(name)])) as {
  readonly [K in (typeof names)[number]]: ReturnType<typeof traced>
}

/**
 * The span of `invoke`, entered by the caller (which checks `tracing` in the
 * step that runs the call, so the untraced call costs no extra effect), with
 * the attributes `agent.id` (the agent's id) and `agent.export` (the export
 * called). It ends with the call: failed with the call's typed error
 * (`Trap`, `Timeout`, …) as its status when the call fails.
 */
export const invokeSpan = (agentId: string, fn: string) =>
  Effect.withSpan("AgentRuntime.invoke", { attributes: { "agent.id": agentId, "agent.export": fn } })
