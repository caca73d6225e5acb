/**
 * Identifiers of the Runtime context (spec "Aggregate Root: RuntimeEnvironment").
 *
 * All ids are branded strings so an `AgentId` cannot be passed where a `ModuleId`
 * is expected. `ModuleHash` is the lowercase hex SHA-256 of a module's bytes
 * (with the signature custom section excluded, see `@agent-runtime/signing`).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** Identity of an agent (chosen by the caller, e.g. the Coordination context). */
export const AgentId = Schema.String.pipe(Schema.brand("AgentId"))
export type AgentId = typeof AgentId.Type

/** Identity of a loaded module inside one runtime. */
export const ModuleId = Schema.String.pipe(Schema.brand("ModuleId"))
export type ModuleId = typeof ModuleId.Type

/** Lowercase hex SHA-256 (64 chars) of a module's bytes. */
export const ModuleHash = Schema.String.pipe(Schema.brand("ModuleHash"))
export type ModuleHash = typeof ModuleHash.Type

/** Identity of one instance of an agent (a new one per spawn / rehydration). */
export const InstanceId = Schema.String.pipe(Schema.brand("InstanceId"))
export type InstanceId = typeof InstanceId.Type

/** Identity of a runtime (the aggregate root). */
export const RuntimeId = Schema.String.pipe(Schema.brand("RuntimeId"))
export type RuntimeId = typeof RuntimeId.Type

/** Identity of a domain event. */
export const EventId = Schema.String.pipe(Schema.brand("EventId"))
export type EventId = typeof EventId.Type

/** An agent type, the key `ModuleRegistry` and `ConfigProvider` resolve. */
export const AgentType = Schema.String.pipe(Schema.brand("AgentType"))
export type AgentType = typeof AgentType.Type

/** Longest agent id accepted by the runtime: 256 UTF-16 code units. */
export const AGENT_ID_MAX_LENGTH = 256

/** Longest rendering of a caller's value in an error message (UTF-16 code units), see `forMessage`. */
export const MESSAGE_VALUE_MAX_LENGTH = 64

// C0 controls, DEL, C1 controls, line/paragraph separators, lone surrogates
const UNPRINTABLE =
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/**
 * Why `id` is not an acceptable agent id, or `undefined`. An agent id is a
 * string of 1..`AGENT_ID_MAX_LENGTH` (256) UTF-16 code units of printable
 * characters: no control characters (U+0000–U+001F, U+007F–U+009F), no line
 * or paragraph separator (U+2028, U+2029), no lone surrogate.
 */
export const agentIdProblem = (id: unknown): string | undefined => {
  if (typeof id !== "string") return `an agent id must be a string, got ${forMessage(id)}`
  if (id.length === 0) return "an agent id must not be empty"
  if (id.length > AGENT_ID_MAX_LENGTH) {
    return `an agent id must be at most ${AGENT_ID_MAX_LENGTH} UTF-16 code units, got ${id.length}`
  }
  if (UNPRINTABLE.test(id)) return `an agent id must be printable (no control characters), got ${forMessage(id)}`
  return undefined
}

/**
 * A caller's value as error messages show it: strings longer than
 * `MESSAGE_VALUE_MAX_LENGTH` (64) UTF-16 code units are cut, with their
 * length, and control characters escaped (JSON); other values by type
 * (`null`, `number 5`, `object`, …). Never echoes a huge input whole.
 */
export const forMessage = (value: unknown): string => {
  if (typeof value === "string") {
    const cut =
      value.length > MESSAGE_VALUE_MAX_LENGTH
        ? `${JSON.stringify(value.slice(0, MESSAGE_VALUE_MAX_LENGTH))}… (${value.length} UTF-16 code units)`
        : JSON.stringify(value)
    return cut
  }
  if (value === null) return "null"
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${value}`
  if (typeof value === "bigint") return `bigint ${String(value).slice(0, MESSAGE_VALUE_MAX_LENGTH)}n`
  if (Array.isArray(value)) return "array"
  return typeof value
}

/**
 * An id as an error's field: the id itself when it is a string of at most
 * `MESSAGE_VALUE_MAX_LENGTH` (64) code units, else its `forMessage` rendering
 * (so a megabyte-long id is never copied into errors and messages).
 */
export const idForError = (id: unknown): string =>
  typeof id === "string" && id.length <= MESSAGE_VALUE_MAX_LENGTH ? id : forMessage(id)

/** Casts a plain string to an id (no validation beyond the type). */
export const agentId = (s: string): AgentId => s as AgentId
/** Casts a plain string to a module id. */
export const moduleId = (s: string): ModuleId => s as ModuleId
/** Casts a plain string to a module hash. */
export const moduleHash = (s: string): ModuleHash => s as ModuleHash
/** Casts a plain string to an agent type. */
export const agentType = (s: string): AgentType => s as AgentType
