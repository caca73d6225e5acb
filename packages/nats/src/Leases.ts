/**
 * `Leases`: one owner per agent across hosts (the spec's invariant 4
 * "Unique Instances", distributed; DESIGN.md "Beyond one machine"). A host
 * holds an agent through a lease key in a NATS KV bucket; placement stays
 * Coordination's decision — the runtime only guards the invariant.
 *
 * The bucket has a `max_age` of `ttlMs` (nats-server 2.9 has bucket-level
 * age only; per-key TTL needs 2.11), so a lease that is not renewed within
 * `ttlMs` disappears and another host may take the agent (activating it
 * from its last snapshot). Every change is revision-checked:
 * - `acquire` creates the key (it must not exist, or be a delete marker):
 *   of any number of hosts racing for one agent exactly one wins; the others
 *   fail with `AgentAlreadyExists { agentId, owner }` naming the winner.
 *   Acquiring a lease this host already holds renews it.
 * - `renew` updates it only at the revision this host last wrote (else
 *   `LeaseLost`: it expired and was taken, or was released elsewhere).
 * - `release` deletes it only at that revision (a lease taken over by another
 *   host is left alone).
 * - `hold` acquires and keeps renewing every `renewEveryMs` (default
 *   `ttlMs / 3`) until its scope closes, then releases.
 *
 * Key: `k` + base64url of the agent id. Value: UTF-8 JSON `{ owner, at }`
 * (`at`: ms since the epoch of the write, informative only — expiry is the
 * server's). Times in ms.
 *
 * Errors: `AgentAlreadyExists` (held by another host), `LeaseLost`,
 * `LeaseError { operation, agentId, reason }` (NATS unreachable, timeouts).
 *
 * @since 0.1.0
 */
import { type AgentId } from "@agent-runtime/domain"
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import { Kvm, type KV } from "@nats-io/kv"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { describe, keyOf } from "./internal/errors.js"
import { Nats } from "./Nats.js"

/**
 * The agent is held by another live host (`owner`, its host id). Same tag
 * and `agentId` as the domain's `AgentAlreadyExists`, plus the owner, so
 * `Effect.catchTag("AgentAlreadyExists")` handles both.
 */
export class AgentAlreadyExists extends Schema.TaggedError<AgentAlreadyExists>()("AgentAlreadyExists", {
  agentId: Schema.String,
  owner: Schema.String
}) {
  override get message() {
    return `agent already exists: ${this.agentId} (held by host ${this.owner})`
  }
}

/** This host's lease on the agent is gone (expired and taken by `owner`, or released elsewhere). */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  agentId: Schema.String,
  owner: Schema.optional(Schema.String)
}) {
  override get message() {
    return `lease on agent ${this.agentId} lost${this.owner === undefined ? "" : ` (now held by host ${this.owner})`}`
  }
}

/** A lease operation could not be carried out (NATS unreachable, timeout, unreadable lease value). */
export class LeaseError extends Schema.TaggedError<LeaseError>()("LeaseError", {
  operation: Schema.String,
  agentId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `lease ${this.operation} of agent ${this.agentId} failed: ${this.reason}`
  }
}

/** Who holds an agent. */
export interface LeaseOwner {
  readonly owner: string
  /** The KV revision of the lease (changes with every renewal). */
  readonly revision: number
}

/** A lease this host holds (from `hold`). */
export interface HeldLease {
  readonly agentId: AgentId
  /** Completes with `LeaseLost` if a renewal finds the lease gone; never while it is held. */
  readonly lost: Effect.Effect<LeaseLost>
}

/** The lease table: one owner per agent id across hosts, in a KV bucket whose `max_age` is the lease TTL (ms). */
export interface LeasesShape {
  /** This host's id (the `owner` written in its leases). */
  readonly hostId: string
  /** Lease time-to-live, ms. */
  readonly ttlMs: number
  /** Takes the agent for this host (or renews it if this host holds it). */
  readonly acquire: (agentId: AgentId) => Effect.Effect<void, AgentAlreadyExists | LeaseError>
  /** Extends this host's lease by `ttlMs`. */
  readonly renew: (agentId: AgentId) => Effect.Effect<void, LeaseLost | LeaseError>
  /** Gives the agent up (only if this host still holds it); releasing a lease not held succeeds. */
  readonly release: (agentId: AgentId) => Effect.Effect<void, LeaseError>
  /** Who holds the agent now, if anyone. */
  readonly owner: (agentId: AgentId) => Effect.Effect<Option.Option<LeaseOwner>, LeaseError>
  /** `acquire`, then renew in the background until the scope closes, then `release`. */
  readonly hold: (agentId: AgentId) => Effect.Effect<HeldLease, AgentAlreadyExists | LeaseError, Scope.Scope>
}

/** The `Leases` service key. */
export class Leases extends Context.Service<Leases, LeasesShape>()("@agent-runtime/nats/Leases") {}

/** Options of the lease table. */
export interface Options {
  /** This host's id, written as the owner of its leases (e.g. the runtime id). */
  readonly hostId: string
  /** KV bucket of the leases (default `"agent-runtime-leases"`); created if missing. */
  readonly bucket?: string | undefined
  /**
   * Lease time-to-live, ms (default 10 000): the bucket's `max_age`. Every
   * host on a bucket must use the same (the bucket keeps the first one's).
   */
  readonly ttlMs?: number | undefined
  /** Renewal period of `hold`, ms (default `ttlMs / 3`). */
  readonly renewEveryMs?: number | undefined
}

const isWrongSequence = (e: unknown) =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

interface LeaseValue {
  readonly owner: string
  readonly at: number
}

const readValue = (bytes: Uint8Array): LeaseValue | undefined => {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LeaseValue>
    return typeof v.owner === "string" ? { owner: v.owner, at: typeof v.at === "number" ? v.at : 0 } : undefined
  } catch {
    return undefined
  }
}

/** Builds the lease table on the shared connection (bucket created if missing). */
export const make = (options: Options): Effect.Effect<LeasesShape, LeaseError, Nats | Scope.Scope> =>
  Effect.gen(function* () {
    const nats = yield* Nats
    const ttlMs = options.ttlMs ?? 10_000
    const renewEveryMs = options.renewEveryMs ?? Math.max(1, Math.floor(ttlMs / 3))
    const hostId = options.hostId
    const kv: KV = yield* Effect.tryPromise({
      try: () => new Kvm(nats.jetstream).create(options.bucket ?? "agent-runtime-leases", { history: 1, ttl: ttlMs }),
      catch: (e) => new LeaseError({ operation: "open", agentId: "", reason: describe(e) })
    })
    /** Revision of each lease this host wrote last. */
    const held = new Map<string, number>()

    /** Runs a KV call; a revision mismatch is `"conflict"`, anything else a `LeaseError`. */
    const call = <A>(
      operation: string,
      agentId: AgentId,
      f: () => Promise<A>
    ): Effect.Effect<A, LeaseError | "conflict"> =>
      Effect.tryPromise({
        try: f,
        catch: (e): LeaseError | "conflict" =>
          isWrongSequence(e) ? "conflict" : new LeaseError({ operation, agentId, reason: describe(e) })
      })

    const value = Effect.map(Clock.currentTimeMillis, (at) =>
      new TextEncoder().encode(JSON.stringify({ owner: hostId, at }))
    )

    const owner = (agentId: AgentId): Effect.Effect<Option.Option<LeaseOwner>, LeaseError> =>
      Effect.gen(function* () {
        const entry = yield* call("owner", agentId, () => kv.get(keyOf(agentId))).pipe(
          Effect.mapError((e) =>
            e === "conflict" ? new LeaseError({ operation: "owner", agentId, reason: "conflict" }) : e
          )
        )
        if (entry === null || entry.operation !== "PUT") return Option.none()
        const v = readValue(entry.value)
        if (v === undefined)
          return yield* new LeaseError({ operation: "owner", agentId, reason: "unreadable lease value" })
        return Option.some({ owner: v.owner, revision: entry.revision })
      })

    const renew = (agentId: AgentId): Effect.Effect<void, LeaseLost | LeaseError> =>
      Effect.gen(function* () {
        const revision = held.get(agentId)
        if (revision === undefined) return yield* new LeaseLost({ agentId })
        const bytes = yield* value
        const next = yield* Effect.result(call("renew", agentId, () => kv.update(keyOf(agentId), bytes, revision)))
        if (Result.isSuccess(next)) {
          held.set(agentId, next.success)
          return
        }
        if (next.failure !== "conflict") return yield* next.failure
        held.delete(agentId)
        const now = yield* Effect.orElseSucceed(owner(agentId), () => Option.none<LeaseOwner>())
        return yield* Option.isSome(now)
          ? new LeaseLost({ agentId, owner: now.value.owner })
          : new LeaseLost({ agentId })
      })

    const acquire = (agentId: AgentId): Effect.Effect<void, AgentAlreadyExists | LeaseError> =>
      Effect.gen(function* () {
        const bytes = yield* value
        const created = yield* Effect.result(call("acquire", agentId, () => kv.create(keyOf(agentId), bytes)))
        if (Result.isSuccess(created)) {
          held.set(agentId, created.success)
          return
        }
        if (created.failure !== "conflict") return yield* created.failure
        // the key exists: held by someone (or expired between the create and this read)
        const now = yield* owner(agentId)
        if (Option.isNone(now)) return yield* acquire(agentId)
        if (now.value.owner !== hostId) return yield* new AgentAlreadyExists({ agentId, owner: now.value.owner })
        // ours (e.g. after a restart of this host with the same id): take it at its current revision
        held.set(agentId, now.value.revision)
        yield* renew(agentId).pipe(
          Effect.catchTag("LeaseLost", (lost) =>
            Effect.fail(new AgentAlreadyExists({ agentId, owner: lost.owner ?? "unknown" }))
          )
        )
      })

    const release = (agentId: AgentId): Effect.Effect<void, LeaseError> =>
      Effect.gen(function* () {
        const revision = held.get(agentId)
        if (revision === undefined) return
        held.delete(agentId)
        const done = yield* Effect.result(
          call("release", agentId, () => kv.delete(keyOf(agentId), { previousSeq: revision }))
        )
        // a conflict: the lease expired and another host took it — not ours to delete
        if (Result.isFailure(done) && done.failure !== "conflict") return yield* done.failure
      })

    const hold = (agentId: AgentId): Effect.Effect<HeldLease, AgentAlreadyExists | LeaseError, Scope.Scope> =>
      Effect.gen(function* () {
        yield* Effect.acquireRelease(acquire(agentId), () => Effect.ignore(release(agentId)))
        const lost = yield* Deferred.make<LeaseLost>()
        yield* renew(agentId).pipe(
          // a failed renewal (NATS away) is retried on the next tick; only a lost lease ends the loop
          Effect.catchTag("LeaseError", (e) => Effect.logWarning(e.message)),
          Effect.repeat(Schedule.spaced(renewEveryMs)),
          Effect.catchTag("LeaseLost", (e) => Deferred.succeed(lost, e)),
          Effect.delay(renewEveryMs),
          Effect.forkScoped
        )
        return { agentId, lost: Deferred.await(lost) }
      })

    return { hostId, ttlMs, acquire, renew, release, owner, hold } satisfies LeasesShape
  })

/** The `Leases` layer (needs `Nats`). */
export const layer = (options: Options): Layer.Layer<Leases, LeaseError, Nats> => Layer.effect(Leases, make(options))
