/**
 * The shared repository contract against the NATS adapters (Object Store
 * modules, KV snapshots), each test on fresh buckets of one real
 * `nats-server -js`.
 */
import { instanceRepositoryContract, moduleRepositoryContract } from "@agent-runtime/repository-contract"
import * as Layer from "effect/Layer"
import { afterAll, beforeAll } from "vitest"
import { NatsInstanceRepository, NatsModuleRepository } from "../src/index.js"
import { connection, names } from "./support/layers.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

let server: RunningNatsServer
beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(() => server?.dispose())

moduleRepositoryContract("nats (Object Store + KV records)", () => {
  const n = names()
  return NatsModuleRepository.layer({ bucket: n.modules, objectStore: n.modules }).pipe(
    Layer.provide(connection(server.url))
  )
})
instanceRepositoryContract("nats (KV, large snapshots through the Object Store)", () => {
  const n = names()
  return NatsInstanceRepository.layer({ bucket: n.instances, objectStore: n.snapshots }).pipe(
    Layer.provide(connection(server.url))
  )
})
instanceRepositoryContract("nats (KV, uncompressed)", () => {
  const n = names()
  return NatsInstanceRepository.layer({ bucket: n.instances, objectStore: n.snapshots, compressSnapshots: false }).pipe(
    Layer.provide(connection(server.url))
  )
})
