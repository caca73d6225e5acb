/**
 * Snapshots as stored bytes: the domain's `SnapshotCodec` (versioned,
 * CRC-32-checked), gzip through the platform's Compression Streams API.
 *
 * @internal
 */
import { SnapshotCodec, type InstanceSnapshot } from "@agent-runtime/domain"

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

/** The codec bytes of `snapshot` (payload gzip-compressed when `compress`); fails with the codec's `SnapshotInvalid`. */
export const encode = (snapshot: InstanceSnapshot, compress: boolean) =>
  SnapshotCodec.encode(snapshot, compress ? { compression: gzip } : {})

/** Decodes stored bytes (compressed or not); fails with the codec's `SnapshotCorrupt` (or `SnapshotMismatch`). */
export const decode = (bytes: Uint8Array) =>
  SnapshotCodec.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { compression: gzip })
