/**
 * Snapshots as stored bytes: the domain's `SnapshotCodec` (versioned,
 * CRC-32-checked) with gzip through the platform's Compression Streams API
 * (`CompressionStream` / `DecompressionStream`, global in Node ≥ 18), plus
 * the checks that keep a save from writing bytes the codec would refuse to
 * read back. The repository knows no layout of its own: a row holds these
 * bytes as one BLOB.
 *
 * @internal
 */
import { SnapshotCodec, type InstanceSnapshot } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { UNCONVERTED } from "./migrations.js"

const PAGE_BYTES = 65_536
const UNCONVERTED_BYTES = Buffer.from(UNCONVERTED, "utf8")
const I64_MIN = -(1n << 63n)
const I64_MAX = (1n << 63n) - 1n

const through = async (stream: CompressionStream | DecompressionStream, bytes: Uint8Array): Promise<Uint8Array> => {
  // `Blob` copies the bytes, so the caller's buffer may change while the stream runs
  const out = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream)
  return new Uint8Array(await new Response(out).arrayBuffer())
}

/** gzip (RFC 1952) through `CompressionStream("gzip")`; malformed input makes `decompress` reject. */
export const gzip: SnapshotCodec.SnapshotCompression = {
  compress: (bytes) => through(new CompressionStream("gzip"), bytes),
  decompress: (bytes) => through(new DecompressionStream("gzip"), bytes)
}

/** Why the codec could not give `snapshot`'s pages and globals back unchanged, or `undefined`. */
const stateProblem = (snapshot: InstanceSnapshot): string | undefined => {
  const { memoryBytes, pages, globals } = snapshot.state
  let previous = -1
  for (const p of pages) {
    if (!Number.isInteger(p.index) || p.index < 0) return `page index must be a non-negative integer, got ${p.index}`
    if (p.index <= previous) return `page ${p.index} is out of order or repeated (indexes must increase)`
    if (!(p.data instanceof Uint8Array) || p.data.byteLength !== PAGE_BYTES) {
      return `page ${p.index} must be a Uint8Array of ${PAGE_BYTES} bytes`
    }
    if ((p.index + 1) * PAGE_BYTES > memoryBytes) return `page ${p.index} lies outside state.memoryBytes (${memoryBytes} bytes)`
    previous = p.index
  }
  for (const [name, v] of Object.entries(globals)) {
    if (typeof v === "bigint") {
      if (v < I64_MIN || v > I64_MAX) return `global ${name} = ${v} is outside the i64 range`
    } else if (typeof v !== "number") return `global ${name} must be a number or a bigint`
  }
  return undefined
}

/**
 * The codec bytes of `snapshot`, gzip-compressed when `compress`. Fails with
 * the reason (a string) when the snapshot could not be read back as it is:
 * metadata the codec's header refuses (a non-finite or non-integer number,
 * `memoryBytes` not a multiple of 64 KiB — checked by the codec itself on a
 * copy without pages), pages that are not 64 KiB, in increasing index order,
 * inside `memoryBytes`, or globals that are neither numbers nor i64 bigints.
 */
export const encode = (snapshot: InstanceSnapshot, compress: boolean): Effect.Effect<Uint8Array<ArrayBuffer>, string> =>
  Effect.gen(function*() {
    const problem = stateProblem(snapshot)
    if (problem !== undefined) return yield* Effect.fail(problem)
    const metadataOnly: InstanceSnapshot = { ...snapshot, state: { memoryBytes: snapshot.state.memoryBytes, pages: [], globals: {} } }
    yield* Effect.flatMap(SnapshotCodec.encode(metadataOnly), (bytes) => SnapshotCodec.decode(bytes)).pipe(
      Effect.mapError((e) => (e._tag === "SnapshotCorrupt" ? e.reason : e.message))
    )
    return yield* SnapshotCodec.encode(snapshot, compress ? { compression: gzip } : {})
  })

/**
 * Decodes stored bytes (compressed or not); a corrupt or truncated snapshot
 * fails with its reason, a row migration 3 could not convert with the reason
 * it recorded.
 */
export const decode = (bytes: Uint8Array): Effect.Effect<InstanceSnapshot, string> => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (text.subarray(0, UNCONVERTED_BYTES.length).equals(UNCONVERTED_BYTES)) return Effect.fail(text.toString("utf8"))
  // a plain Uint8Array view: the codec's `slice` then copies pages out of the (Buffer) BLOB
  return SnapshotCodec.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { compression: gzip }).pipe(
    Effect.mapError((e) => (e._tag === "SnapshotCorrupt" ? e.reason : e.message))
  )
}
