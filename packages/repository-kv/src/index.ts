/**
 * `@agent-runtime/repository-kv` — the domain's `InstanceRepository` on a
 * key-value store shaped like Workers KV or Durable Object storage
 * (`KvInstanceRepository`; the store is the structural `KeyValueStore`).
 * Platform-free: runs in workerd, Node and browsers.
 *
 * @since 0.2.0
 */
export * as KvInstanceRepository from "./KvInstanceRepository.js"
export type { KeyValueStore, KvListResult, KvRepositoryOptions } from "./KvInstanceRepository.js"
