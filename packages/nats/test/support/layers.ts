/**
 * Layers over a test's nats-server: a fresh connection per layer, buckets
 * and streams with names no other test uses.
 */
import * as Layer from "effect/Layer"
import { Nats, NatsHost } from "../../src/index.js"
import { uniqueName } from "./NatsServer.js"

/** A connection to `url`, closed with the layer. */
export const connection = (url: string, name = "test"): Layer.Layer<Nats.Nats, Nats.NatsUnavailable> =>
  Nats.layer({ servers: url, name, connectTimeoutMs: 2_000 })

/** Fresh bucket / store / stream names for one test (`NatsHost.names` of a unique prefix). */
export const names = (): NatsHost.Names => NatsHost.names(uniqueName("t"))
