/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's `crc32`):
 * the JavaScript oracle the swarm checks the `text` agent's `checksum`
 * export against.
 *
 * @since 0.1.0
 */

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** The unsigned CRC-32 of `bytes` (`crc32(utf8("123456789")) === 0xcbf43926`). */
export const crc32 = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}
