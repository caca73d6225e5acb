/**
 * Snapshots as stored bytes: the domain's `SnapshotCodec` (versioned,
 * CRC-32-checked) with gzip through the platform's Compression Streams API
 * (`CompressionStream` / `DecompressionStream`, global in Node ≥ 18), plus
 * the checks that keep a save from writing bytes the codec would refuse to
 * read back. The repository knows no layout of its own.
 *
 * @internal
 */
import { SnapshotCodec, type InstanceSnapshot } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"

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
 * The codec bytes of `snapshot`, gzip-compressed when `compress`. Fails with
 * the reason (a string) when the codec refuses the snapshot
 * (`SnapshotInvalid`: it could not be read back as it is).
 */
export const encode = (snapshot: InstanceSnapshot, compress: boolean): Effect.Effect<Uint8Array<ArrayBuffer>, string> =>
  SnapshotCodec.encode(snapshot, compress ? { compression: gzip } : {}).pipe(Effect.mapError((e) => e.reason))

/** Decodes stored bytes (compressed or not); a corrupt or truncated snapshot fails with its reason. */
export const decode = (bytes: Uint8Array): Effect.Effect<InstanceSnapshot, string> => {
  const legacy = formatProblem(bytes)
  if (legacy !== undefined) return Effect.fail(legacy)
  // a plain Uint8Array view: the codec's `slice` then copies pages out of the (Buffer) file contents
  return SnapshotCodec.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
    compression: gzip
  }).pipe(Effect.mapError((e) => (e._tag === "SnapshotCorrupt" ? e.reason : e.message)))
}

// --- listing: the agent id from the codec's uncompressed header ---
// (SnapshotCodec documents its layout — magic "ARSN", u16 format version at
// 4, u32 header length at 8, u32 payload length at 12, UTF-8 JSON header at
// 16 — and keeps the header uncompressed; it has no header-only reader, so
// listing reads these few fields here instead of every whole file)

/** Bytes before the codec's JSON header. */
export const PREFIX_BYTES = 16
const MAGIC = [0x41, 0x52, 0x53, 0x4e] as const
/** Start of files in the format this adapter wrote before it used the codec ("ARSNAP", u16 1). */
const LEGACY_MAGIC = [0x41, 0x52, 0x53, 0x4e, 0x41, 0x50, 0x01, 0x00] as const

const startsWith = (bytes: Uint8Array, prefix: ReadonlyArray<number>): boolean =>
  bytes.byteLength >= prefix.length && prefix.every((b, i) => bytes[i] === b)

/**
 * Why bytes cannot be a snapshot of this version, judged from their first
 * bytes (for a clearer reason than the codec's where it can tell more), or
 * `undefined`.
 */
export const formatProblem = (bytes: Uint8Array): string | undefined =>
  startsWith(bytes, LEGACY_MAGIC)
    ? "written in the file format of @agent-runtime/repository-fs before it stored SnapshotCodec bytes, which it no longer reads (delete the file; the agent starts afresh)"
    : undefined

/** The byte length of prefix + header, from the 16-byte prefix; `undefined` if it is too short or not a snapshot. */
export const headerEnd = (prefix: Uint8Array): number | undefined => {
  if (prefix.byteLength < PREFIX_BYTES || !startsWith(prefix, MAGIC)) return undefined
  return PREFIX_BYTES + new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES).getUint32(8, true)
}

/** The `agentId` in a snapshot's header (`bytes`: at least prefix + header), or the reason it cannot be read. */
export const headerAgentId = (bytes: Uint8Array): { readonly agentId: string } | { readonly problem: string } => {
  const legacy = formatProblem(bytes)
  if (legacy !== undefined) return { problem: legacy }
  const end = headerEnd(bytes)
  if (end === undefined) return { problem: "not a snapshot (bad magic or truncated)" }
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(4, true)
  if (version !== SnapshotCodec.FORMAT_VERSION) return { problem: `unsupported snapshot format version ${version}` }
  if (end > bytes.byteLength) return { problem: "truncated header" }
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(PREFIX_BYTES, end)))
  } catch {
    return { problem: "corrupt header (not UTF-8 JSON)" }
  }
  const agentId = header !== null && typeof header === "object" ? (header as { agentId?: unknown }).agentId : undefined
  return typeof agentId === "string" ? { agentId } : { problem: "corrupt header (no agentId)" }
}
