/**
 * Snapshot rows as codec bytes: the domain's `SnapshotCodec` (versioned,
 * CRC-32-checked), gzip through the platform's Compression Streams API
 * (`CompressionStream` / `DecompressionStream`, global in Node ≥ 18) for the
 * whole-snapshot rows of schema version 3 that were written compressed. The
 * header rows of the paged layout (`pages.ts`) are uncompressed codec bytes.
 *
 * @internal
 */
import { SnapshotCodec, type InstanceSnapshot } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { UNCONVERTED } from "./migrations.js"

const UNCONVERTED_BYTES = Buffer.from(UNCONVERTED, "utf8")

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

/**
 * Decodes stored bytes (compressed or not); a corrupt or truncated snapshot
 * fails with its reason, a row migration 3 could not convert with the reason
 * it recorded.
 */
export const decode = (bytes: Uint8Array): Effect.Effect<InstanceSnapshot, string> => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (text.subarray(0, UNCONVERTED_BYTES.length).equals(UNCONVERTED_BYTES)) return Effect.fail(text.toString("utf8"))
  // a plain Uint8Array view: the codec's `slice` then copies pages out of the (Buffer) BLOB
  return SnapshotCodec.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
    compression: gzip
  }).pipe(Effect.mapError((e) => (e._tag === "SnapshotCorrupt" ? e.reason : e.message)))
}
