/**
 * `@agent-runtime/repository-indexeddb` — the `ModuleRepository`,
 * `InstanceRepository` and `MetricsRepository` ports on IndexedDB (browsers),
 * with an explicit in-memory fallback when IndexedDB cannot be opened.
 *
 * @since 0.2.0
 */
export * as IndexedDbRepositories from "./IndexedDbRepositories.js"
