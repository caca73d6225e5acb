/**
 * Running better-sqlite3 calls as Effects: every thrown error (SQLITE_BUSY,
 * SQLITE_CORRUPT, SQLITE_FULL, SQLITE_READONLY, a closed connection, …)
 * becomes a `RepositoryError { operation, reason }`.
 *
 * @internal
 */
import { RepositoryError } from "@agent-runtime/domain"
import type Database from "better-sqlite3"
import * as Effect from "effect/Effect"

/** A failure whose message is the reason of a `RepositoryError` as is. */
export class Invalid extends Error {}

/** Text of a thrown value: SQLite's error code (`SQLITE_BUSY`) and message. */
export const describe = (e: unknown): string => {
  if (e instanceof Invalid) return e.message
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    return typeof code === "string" ? `${code}: ${e.message}` : e.message
  }
  return String(e)
}

/** Runs a synchronous database call; a throw becomes `RepositoryError { operation }`. */
export const attempt = <A>(operation: string, f: () => A): Effect.Effect<A, RepositoryError> =>
  Effect.try({ try: f, catch: (e) => new RepositoryError({ operation, reason: describe(e) }) })

/** Runs `f` in an IMMEDIATE write transaction (all of it commits, or none), as an Effect. */
export const write = <A>(db: Database.Database, operation: string, f: () => A): Effect.Effect<A, RepositoryError> =>
  attempt(operation, () => db.transaction(f).immediate())

/** Runs `f` in a read transaction (one consistent view across several statements), as an Effect. */
export const read = <A>(db: Database.Database, operation: string, f: () => A): Effect.Effect<A, RepositoryError> =>
  attempt(operation, () => db.transaction(f).deferred())
