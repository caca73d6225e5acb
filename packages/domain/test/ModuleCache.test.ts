import { type CacheEntry, ModuleCache, moduleHash } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"

const compiled = (hash: string, byteLength: number) => ({ hash: moduleHash(hash), byteLength, handle: hash })

/** `touchModule` as it was (a walk over every entry): the reference the indexed version must match. */
const touchByWalk = (c: ModuleCache, hash: string, now: number): void => {
  for (const entry of c.entries()) {
    if (entry.moduleHash === hash) {
      ;(entry as CacheEntry).hits++
      ;(entry as CacheEntry).lastAccess = now
    }
  }
}

const view = (c: ModuleCache) =>
  c
    .entries()
    .map((e) => [e.key, e.moduleHash, e.hits, e.lastAccess] as const)
    .sort(([a], [b]) => (a < b ? -1 : 1))

describe("ModuleCache.touchModule", () => {
  it("touches exactly the variants of the module hash, after replacements, deletions and evictions", () => {
    const indexed = new ModuleCache(100)
    const walked = new ModuleCache(100)
    const script: ReadonlyArray<(c: ModuleCache, touch: (hash: string, now: number) => void) => void> = [
      (c) => c.set("a", compiled("a", 10), 0),
      (c) => c.set("a|cap=4", compiled("a", 10), 0),
      (c) => c.set("b", compiled("b", 10), 0),
      (_, touch) => touch("a", 5),
      (c) => c.set("a|cap=4", compiled("a", 20), 6), // replaced: still one variant of a
      (c) => void c.delete("a"),
      (_, touch) => touch("a", 7),
      (c) => c.set("a|fuel=1", compiled("a", 50), 8),
      (c) => c.set("c", compiled("c", 60), 9), // over 100 bytes: evicts the least recently used
      (_, touch) => touch("a", 10),
      (_, touch) => touch("b", 11),
      (_, touch) => touch("nothing", 12),
      (c) => c.set("b|cap=1", compiled("b", 5), 13),
      (_, touch) => touch("b", 14)
    ]
    for (const step of script) {
      step(indexed, (hash, now) => indexed.touchModule(moduleHash(hash), now))
      step(walked, (hash, now) => {
        touchByWalk(walked, hash, now)
      })
      expect(view(indexed)).toEqual(view(walked))
    }
    expect(indexed.stats().evictions).toBeGreaterThan(0)
    expect(indexed.stats().hits).toBe(6) // one per touchModule, found or not
  })

  it("forgets a module's variants once they all left the cache", () => {
    const c = new ModuleCache(1000)
    c.set("a", compiled("a", 1), 0)
    c.set("a|cap=1", compiled("a", 1), 0)
    c.dropIdle(100, 10)
    c.touchModule(moduleHash("a"), 200)
    expect(c.entries()).toEqual([])
    c.set("a", compiled("a", 1), 300)
    c.touchModule(moduleHash("a"), 400)
    expect(c.peek("a")).toMatchObject({ hits: 1, lastAccess: 400 })
  })
})

describe("ModuleCache lookups (one shared options object for lru-cache)", () => {
  it("every lookup reports its own diagnostics status while a subscriber listens, and none leaks into the next", async () => {
    const dc = await import("node:diagnostics_channel")
    const c = new ModuleCache(100)
    c.set("a", compiled("a", 10), 0)
    const statuses: Array<Record<string, unknown>> = []
    const listener = (message: unknown) =>
      void statuses.push({ ...(message as Record<string, unknown>), self: message })
    // lru-cache loads node:diagnostics_channel asynchronously: wait for its channel to be live
    for (let k = 0; k < 10; k++) await new Promise((r) => setTimeout(r, 0))
    dc.subscribe("lru-cache:metrics", listener)
    try {
      expect(c.peek("a")?.key).toBe("a")
      expect(c.get("a", 1)?.key).toBe("a")
      expect(c.get("zz", 2)).toBeUndefined()
      expect(c.peek("zz")).toBeUndefined()
    } finally {
      dc.unsubscribe("lru-cache:metrics", listener)
    }
    expect(statuses.map((s) => [s.op, s.key, s.peek ?? s.get])).toEqual([
      ["peek", "a", "hit"],
      ["get", "a", "hit"],
      ["get", "zz", "miss"],
      ["peek", "zz", "miss"]
    ])
    expect(new Set(statuses.map((s) => s.self)).size).toBe(4) // a fresh status per lookup
    // and without a subscriber the lookups (and counters) are as before
    expect([c.get("a", 3)?.hits, c.peek("zz"), c.stats().hits, c.stats().misses]).toEqual([2, undefined, 2, 1])
  })
})
