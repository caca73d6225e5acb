/**
 * Small helpers shared by the adapters: error text, Promise → typed error,
 * key encoding, SHA-256.
 *
 * @internal
 */
import { RepositoryError } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"

/** A one-line description of a thrown value (its message, with the NATS error code when there is one). */
export const describe = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : ""
    return `${e.message}${typeof code === "string" || typeof code === "number" ? ` [${code}]` : ""}${cause}`
  }
  return String(e)
}

/** A Promise-returning operation whose rejection becomes `RepositoryError { operation, reason }`. */
export const attempt = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, RepositoryError> =>
  Effect.tryPromise({ try: f, catch: (e) => new RepositoryError({ operation, reason: describe(e) }) })

/**
 * A KV key for any string: base64url of its UTF-8 bytes (characters
 * `A-Z a-z 0-9 - _`, all legal in a KV key), so ids with dots, slashes,
 * spaces or unicode stay distinct and round-trip.
 */
export const keyOf = (id: string): string => "k" + Buffer.from(id, "utf8").toString("base64url")

/** The id a `keyOf` key was made from, or `undefined` for keys this package did not write. */
export const idOf = (key: string): string | undefined =>
  key.startsWith("k") ? Buffer.from(key.slice(1), "base64url").toString("utf8") : undefined

/** Lowercase hex SHA-256. */
export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** Whether `bytes` starts with `prefix`. */
export const startsWith = (bytes: Uint8Array, prefix: ReadonlyArray<number>): boolean =>
  bytes.byteLength >= prefix.length && prefix.every((b, i) => bytes[i] === b)
