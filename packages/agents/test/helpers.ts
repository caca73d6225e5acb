/** Test helpers: instantiate a built agent with plain `WebAssembly` and move bytes through its memory. */
import { readAgent } from "../src/index.js"

/** Instantiates the signed `build/<name>.wasm` with plain `WebAssembly.instantiate`. */
export const instantiate = async <E>(name: string, imports: WebAssembly.Imports = {}): Promise<E> => {
  const { instance } = await WebAssembly.instantiate(readAgent(name), imports)
  return instance.exports as unknown as E
}

/** The exports every linear-memory agent has. */
export interface WithMemory {
  readonly memory: WebAssembly.Memory
}

/** ABI of agents taking text: `alloc(size) -> ptr`, `dealloc(ptr, size)`. */
export interface Allocator extends WithMemory {
  alloc(size: number): number
  dealloc(ptr: number, size: number): void
}

/**
 * Copies `bytes` into the agent (alloc + write), calls `f(ptr, len)`, frees the
 * block and returns f's result. The buffer is read after `alloc`, which may
 * have grown (and so detached) the previous one.
 */
export const withBytes = <A extends Allocator, R>(
  agent: A,
  bytes: Uint8Array,
  f: (ptr: number, len: number) => R
): R => {
  const ptr = agent.alloc(bytes.length)
  new Uint8Array(agent.memory.buffer, ptr, bytes.length).set(bytes)
  try {
    return f(ptr, bytes.length)
  } finally {
    agent.dealloc(ptr, bytes.length)
  }
}

/** Reads the bytes a byte-returning export described: `pairPtr` points to (ptr: i32, len: i32), little-endian. */
export const readPair = (memory: WebAssembly.Memory, pairPtr: number): Uint8Array => {
  const view = new DataView(memory.buffer)
  const ptr = view.getUint32(pairPtr, true)
  const len = view.getUint32(pairPtr + 4, true)
  return new Uint8Array(memory.buffer.slice(ptr, ptr + len))
}

/** CRC-32 (IEEE 802.3, reflected 0xEDB88320), the same as zlib's; unsigned. */
export const crc32 = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (const byte of bytes) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1
  }
  return (crc ^ 0xffffffff) >>> 0
}

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
