/**
 * `TrustStore`: the public keys whose module signatures the runtime accepts
 * (the Security context's access list, DESIGN.md "Ports: ModuleVerifier").
 *
 * An immutable value object keyed by `keyId` (first 16 hex chars of
 * SHA-256(public key)); every key may carry a human label ("release key
 * 2025"). `add`/`remove` return a new store.
 *
 * JSON form (`toJson` / `fromJson`):
 *
 * ```json
 * { "keys": [ { "keyId": "1f2e3d4c5b6a7980", "publicKey": "<64 hex>", "label": "ci" } ] }
 * ```
 *
 * @example
 * ```ts
 * const store = TrustStore.empty.add(keyPair.publicKey, "dev laptop")
 * store.get(keyPair.keyId)?.label // "dev laptop"
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { PUBLIC_KEY_LENGTH } from "./internal/ed25519.js"
import { toHex } from "./internal/encoding.js"
import { decodePublicKey, InvalidKey, keyIdOf } from "./KeyPair.js"

/** A trusted public key (32 bytes) with its id and optional label. */
export interface TrustedKey {
  readonly keyId: string
  readonly publicKey: Uint8Array
  readonly label: string | undefined
}

/** JSON form of a trust store (hex public keys). */
export interface TrustStoreJson {
  readonly keys: ReadonlyArray<{ readonly keyId: string; readonly publicKey: string; readonly label?: string }>
}

/** An immutable set of trusted ed25519 public keys, by key id. */
export class TrustStore {
  private constructor(private readonly entries: ReadonlyMap<string, TrustedKey>) {}

  /** The store that trusts nothing. */
  static readonly empty: TrustStore = new TrustStore(new Map())

  /**
   * A store of the given keys (a later key with the same id replaces an earlier one).
   * Throws a `RangeError` on a public key that is not 32 bytes.
   */
  static make(keys: Iterable<{ readonly publicKey: Uint8Array; readonly label?: string | undefined }>): TrustStore {
    let store = TrustStore.empty
    for (const key of keys) store = store.add(key.publicKey, key.label)
    return store
  }

  /**
   * Reads a trust store from JSON: a `TrustStoreJson` object, or a single key
   * object (`{ publicKey, keyId?, label? }`, e.g. a key file from
   * `agent-runtime keygen`). A string is parsed as JSON text first.
   * Fails with `InvalidKey` on malformed JSON, a malformed key or a `keyId`
   * that does not match its public key.
   */
  static fromJson(json: unknown): Effect.Effect<TrustStore, InvalidKey> {
    return Effect.gen(function* () {
      let value = json
      if (typeof json === "string") {
        value = yield* Effect.try({
          try: () => JSON.parse(json) as unknown,
          catch: () => new InvalidKey({ reason: "trust store is not valid JSON" })
        })
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return yield* new InvalidKey({ reason: "trust store is not a JSON object" })
      }
      const record = value as Record<string, unknown>
      const items: ReadonlyArray<unknown> = Array.isArray(record["keys"]) ? record["keys"] : [record]
      if (!Array.isArray(record["keys"]) && record["publicKey"] === undefined) {
        return yield* new InvalidKey({ reason: 'trust store has neither "keys" nor "publicKey"' })
      }
      let store = TrustStore.empty
      for (const [index, item] of items.entries()) {
        const key = yield* decodePublicKey(item).pipe(
          Effect.mapError((e) => new InvalidKey({ reason: `key ${index}: ${e.reason}` }))
        )
        const label = (item as Record<string, unknown>)["label"]
        store = store.add(key.publicKey, typeof label === "string" ? label : undefined)
      }
      return store
    })
  }

  /** Number of trusted keys. */
  get size(): number {
    return this.entries.size
  }

  /** The trusted keys, in insertion order. */
  get keys(): ReadonlyArray<TrustedKey> {
    return [...this.entries.values()]
  }

  /** A store that also trusts `publicKey` (32 bytes). Re-adding a key replaces its label. Throws a `RangeError` on a wrong length. */
  add(publicKey: Uint8Array, label?: string): TrustStore {
    if (publicKey.length !== PUBLIC_KEY_LENGTH) {
      throw new RangeError(`public key must be ${PUBLIC_KEY_LENGTH} bytes, got ${publicKey.length}`)
    }
    const keyId = keyIdOf(publicKey)
    const entries = new Map(this.entries)
    entries.set(keyId, { keyId, publicKey: Uint8Array.from(publicKey), label })
    return new TrustStore(entries)
  }

  /** A store without the key `keyId` (the same store when it was not trusted). */
  remove(keyId: string): TrustStore {
    if (!this.entries.has(keyId)) return this
    const entries = new Map(this.entries)
    entries.delete(keyId)
    return new TrustStore(entries)
  }

  /** The trusted key with this id, or `undefined`. */
  get(keyId: string): TrustedKey | undefined {
    return this.entries.get(keyId)
  }

  /** Whether a key with this id is trusted. */
  has(keyId: string): boolean {
    return this.entries.has(keyId)
  }

  /** The JSON form (hex public keys; `label` only where set). */
  toJson(): TrustStoreJson {
    return {
      keys: this.keys.map((k) => ({
        keyId: k.keyId,
        publicKey: toHex(k.publicKey),
        ...(k.label === undefined ? {} : { label: k.label })
      }))
    }
  }
}
