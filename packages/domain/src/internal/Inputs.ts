/**
 * Input checks of the public entry points (`AgentRuntime`, and through it the
 * Promise facade): untyped JavaScript may pass anything, and every wrong
 * shape fails with a typed error — never a raw `TypeError`, never blamed on
 * the guest, never a huge input echoed whole (`Ids.forMessage`).
 *
 * The structured inputs (module metadata, agent configs, eviction reasons)
 * are checked with their Schemas; the hot path of `invoke` only checks that
 * the arguments are an array (`Array.isArray`) before the signature check.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { EvictionReason } from "../EvictionReason.js"
import { agentIdProblem, forMessage, idForError } from "../Ids.js"
import { ModuleMetadata } from "../ModuleMetadata.js"
import { AgentNotFound, FunctionNotFound, InvalidArgument, InvalidConfig, SignatureMismatch } from "../RuntimeError.js"

const isMetadata = Schema.is(ModuleMetadata)
const isReason = Schema.is(EvictionReason)

/** `AgentNotFound` (with the id cut for the message) when `id` cannot be an agent id, else `undefined`. */
export const badAgentId = (id: unknown): AgentNotFound | undefined =>
  agentIdProblem(id) === undefined ? undefined : new AgentNotFound({ agentId: idForError(id) })

/** Runs `f` unless `check` (run first, when the effect runs) finds a problem, which it fails with. */
export const checked = <B extends Error, A, E, R>(
  check: () => B | undefined,
  f: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E | B, R> =>
  Effect.suspend((): Effect.Effect<A, E | B, R> => {
    const bad = check()
    return bad === undefined ? f() : Effect.fail(bad)
  })

/** Runs `f` when `id` can be an agent id, else fails with `AgentNotFound`. */
export const withAgentId = <A, E, R>(
  id: unknown,
  f: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E | AgentNotFound, R> => checked(() => badAgentId(id), f)

/** `loadModule`'s inputs: bytes must be a `Uint8Array`, metadata a `ModuleMetadata` (`makeMetadata`). */
export const badModuleInput = (bytes: unknown, metadata: unknown): InvalidArgument | undefined => {
  if (!(bytes instanceof Uint8Array)) {
    return new InvalidArgument({
      operation: "loadModule",
      argument: "bytes",
      reason: `expected a Uint8Array, got ${forMessage(bytes)}`
    })
  }
  if (!isMetadata(metadata)) {
    return new InvalidArgument({
      operation: "loadModule",
      argument: "metadata",
      reason: `expected ModuleMetadata (makeMetadata({ name, version })), got ${forMessage(metadata)}`
    })
  }
  return undefined
}

const OPTIONAL_NUMBERS = ["memoryReservation", "timeoutMs", "fuel"] as const
const OPTIONAL_BOOLEANS = ["critical", "autoStart"] as const

/** `spawnAgent`'s inputs: a valid agent id (`Ids.agentIdProblem`) and a config object of the right field types. */
export const badSpawnInput = (id: unknown, moduleId: unknown, config: unknown): InvalidConfig | undefined => {
  const idProblem = agentIdProblem(id)
  if (idProblem !== undefined) return new InvalidConfig({ reason: idProblem })
  if (typeof moduleId !== "string")
    return new InvalidConfig({ reason: `a module id must be a string, got ${forMessage(moduleId)}` })
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    return new InvalidConfig({ reason: `the config must be an object ({ memoryLimit, … }), got ${forMessage(config)}` })
  }
  const c = config as Record<string, unknown>
  if (typeof c.memoryLimit !== "number") {
    return new InvalidConfig({ reason: `memoryLimit must be a number of bytes, got ${forMessage(c.memoryLimit)}` })
  }
  for (const k of OPTIONAL_NUMBERS) {
    if (c[k] !== undefined && typeof c[k] !== "number")
      return new InvalidConfig({ reason: `${k} must be a number, got ${forMessage(c[k])}` })
  }
  for (const k of OPTIONAL_BOOLEANS) {
    if (c[k] !== undefined && typeof c[k] !== "boolean")
      return new InvalidConfig({ reason: `${k} must be a boolean, got ${forMessage(c[k])}` })
  }
  if (c.imports !== undefined && (typeof c.imports !== "object" || c.imports === null)) {
    return new InvalidConfig({ reason: `imports must be an object of import modules, got ${forMessage(c.imports)}` })
  }
  return undefined
}

/** `evictAgent`'s reason: one of `EvictionReason`. */
export const badEvictionReason = (reason: unknown): InvalidArgument | undefined =>
  isReason(reason)
    ? undefined
    : new InvalidArgument({
        operation: "evictAgent",
        argument: "reason",
        reason: `expected one of ${EvictionReason.literals.join(", ")}, got ${forMessage(reason)}`
      })

/** `FunctionNotFound` for an export name that is not a string (or is too long to be one the module has). */
export const functionNotFound = (fn: unknown): FunctionNotFound => new FunctionNotFound({ function: idForError(fn) })

/** `SignatureMismatch` (index -1) for call arguments that are not an array. */
export const argumentsNotArray = (fn: string, args: unknown): SignatureMismatch =>
  new SignatureMismatch({ function: fn, index: -1, reason: `arguments must be an array, got ${forMessage(args)}` })

/** `SignatureMismatch` for call arguments whose reading threw (an accessor on the array). */
export const argumentsUnreadable = (fn: string, e: unknown): SignatureMismatch =>
  new SignatureMismatch({
    function: fn,
    index: -1,
    reason: `reading the arguments threw: ${forMessage(e instanceof Error ? e.message : e)}`
  })
