/**
 * Every shared port of one runtime host on NATS in one layer (DESIGN.md
 * "Beyond one machine"): the connection (`Nats`), modules in the Object
 * Store (`NatsModuleRepository`), agent states in KV
 * (`NatsInstanceRepository`), events on JetStream (`NatsEventBus`) and the
 * lease table (`Leases`). Add `AgentRuntimes.layer(settings)` (with an
 * engine, a verifier, metrics and an authorizer) and `LeasedRuntime.layer`
 * on top and the host shares its agents with every other host on the same
 * names.
 *
 * ```ts
 * const host = NatsHost.layer({ servers: "nats://127.0.0.1:4222", hostId: "host-a", names: NatsHost.names("prod") })
 * ```
 *
 * @since 0.3.0
 */
import type { EventBus, InstanceRepository, ModuleRepository, RepositoryError } from "@agent-runtime/domain"
import * as Layer from "effect/Layer"
import * as Leases from "./Leases.js"
import * as Nats from "./Nats.js"
import * as NatsEventBus from "./NatsEventBus.js"
import * as NatsInstanceRepository from "./NatsInstanceRepository.js"
import * as NatsModuleRepository from "./NatsModuleRepository.js"

/** The NATS resources the hosts of one deployment share (created when missing). */
export interface Names {
  /** KV bucket and Object Store of the modules. */
  readonly modules: string
  /** KV bucket of the agents' snapshots. */
  readonly instances: string
  /** Object Store of the snapshots too large for one KV value. */
  readonly snapshots: string
  /** KV bucket of the leases. */
  readonly leases: string
  /** JetStream stream of the events. */
  readonly stream: string
  /** First subject token of the events. */
  readonly subjectPrefix: string
}

/**
 * The names of a deployment called `prefix`: buckets and stores
 * `<prefix>-modules`, `<prefix>-instances`, `<prefix>-snapshots`,
 * `<prefix>-leases`, the stream `<prefix>_EVENTS` and the subject prefix
 * `<prefix>`. Every character of `prefix` outside `[A-Za-z0-9_-]` becomes
 * `_` (KV bucket and JetStream names allow only those; subject tokens may
 * not hold `.`, `*`, `>` or spaces).
 */
export const names = (prefix: string): Names => {
  const token = prefix.replace(/[^A-Za-z0-9_-]/g, "_")
  return {
    modules: `${token}-modules`,
    instances: `${token}-instances`,
    snapshots: `${token}-snapshots`,
    leases: `${token}-leases`,
    stream: `${token}_EVENTS`,
    subjectPrefix: token
  }
}

/** Options of `layer`. */
export interface Options {
  /** The server(s) to connect to (`Nats.Options.servers`). */
  readonly servers: string | ReadonlyArray<string>
  /** This host's id: the event bus's runtime id, the owner in its leases and the connection's name. Use the runtime's id. */
  readonly hostId: string
  /** Where the deployment lives (see `names`); default: each adapter's own default names. */
  readonly names?: Names | undefined
  /** Lease time-to-live, ms (`Leases.Options.ttlMs`, default 10 000); the same on every host of the deployment. */
  readonly ttlMs?: number | undefined
  /** How long the first connection may take, ms (`Nats.Options.connectTimeoutMs`). */
  readonly connectTimeoutMs?: number | undefined
}

/** Every port a host needs on NATS, the connection included (closed with the layer). */
export type Services =
  | Nats.Nats
  | ModuleRepository
  | InstanceRepository
  | EventBus
  | NatsEventBus.NatsEventBus
  | Leases.Leases

/**
 * The ports of one host. Errors at build: `NatsUnavailable` (no server
 * within `connectTimeoutMs`), `NatsConfigInvalid` (JetStream refused the
 * stream), `RepositoryError` (a bucket or store could not be created),
 * `LeaseError` (the lease bucket could not be created).
 */
export const layer = (
  options: Options
): Layer.Layer<Services, Nats.NatsUnavailable | Nats.NatsConfigInvalid | RepositoryError | Leases.LeaseError> => {
  const n = options.names
  const ports = Layer.mergeAll(
    NatsModuleRepository.layer(n === undefined ? {} : { bucket: n.modules, objectStore: n.modules }),
    NatsInstanceRepository.layer(n === undefined ? {} : { bucket: n.instances, objectStore: n.snapshots }),
    NatsEventBus.layer({ runtimeId: options.hostId, stream: n?.stream, subjectPrefix: n?.subjectPrefix }),
    Leases.layer({ hostId: options.hostId, bucket: n?.leases, ttlMs: options.ttlMs })
  )
  return ports.pipe(
    Layer.provideMerge(
      Nats.layer({ servers: options.servers, name: options.hostId, connectTimeoutMs: options.connectTimeoutMs })
    )
  )
}
