/**
 * The shared repository contract against the key-value adapter: on a
 * Workers KV-shaped store with tiny list pages, and on a Durable
 * Object-shaped one.
 */
import { instanceRepositoryContract } from "@agent-runtime/repository-contract"
import * as Layer from "effect/Layer"
import { type KeyValueStore, KvInstanceRepository } from "../src/index.js"

/** Durable Object storage's shape: `get` → undefined when missing, `list` → a Map. */
const durableObjectStorage = (): KeyValueStore => {
  const entries = new Map<string, string>()
  return {
    get: async (key) => entries.get(key),
    put: async (key, value) => void entries.set(key, value),
    delete: async (key) => entries.delete(key),
    list: async ({ prefix }) => new Map([...entries].filter(([k]) => k.startsWith(prefix)).sort())
  }
}

// the shared contract, on a Workers KV-shaped store with tiny list pages, and on a Durable Object-shaped one
instanceRepositoryContract("kv (Workers KV shape, 2 keys per list page)", () =>
  Layer.suspend(() => KvInstanceRepository.layer(KvInstanceRepository.memoryStore(2)))
)
instanceRepositoryContract("kv (Durable Object storage shape)", () =>
  Layer.suspend(() => KvInstanceRepository.layer(durableObjectStorage()))
)
