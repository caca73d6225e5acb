// The fuel pass's per-body scan (src/internal/FuelScan.ts) compiled to
// WebAssembly: the same linear scan, the same tables, the same output bytes.
// Built by scripts/build-fuel-scan.mjs into src/internal/FuelScanWasmBytes.ts
// (committed); driven by src/internal/FuelScanWasm.ts.
//
// Memory, all addresses in bytes:
// - TABLES (2048 bytes, static): filled by the driver from FuelScan.ts's JS
//   tables once per instance — KIND (256), CONTROL_U32 (256), PREFIXED (768),
//   VALTYPE (256), BLOCKTYPE1 (256), COST (256: the default cost of each
//   one-byte opcode; prefixed opcodes cost 1). One source of truth: Opcodes.ts.
// - from heapBase(): whatever the driver lays out — the parameter count of
//   every body (i32 each, -1: unknown type), the code section's bodies and the
//   output, last (the scan grows memory for it).
//
// Like the JS scan it is a fast path, not a decoder with its own errors: on
// anything it does not handle, `run` stops before that body and returns its
// index; the driver rewrites it with the JS path (the same bytes or the same
// typed error) and resumes after it. It only handles the default costs.

// What a one-byte opcode is to the scan (KIND); must equal FuelScan.ts's K_*.
const K_BAIL: u32 = 0
const K_NONE: u32 = 1
const K_U32: u32 = 2
const K_MEMARG: u32 = 3
const K_I32: u32 = 4
const K_I64: u32 = 5
const K_F32: u32 = 6
const K_F64: u32 = 7
const K_LOCAL: u32 = 8
const K_GLOBAL: u32 = 9
const K_BLOCK: u32 = 10
const K_SELECT_T: u32 = 11
const K_REF_NULL: u32 = 12
const K_PREFIX: u32 = 13
const K_CONTROL: u32 = 20
const K_LOOP: u32 = 20
const K_IF: u32 = 21
const K_ELSE: u32 = 22
const K_CATCH: u32 = 23
const K_END: u32 = 24
const K_DELEGATE: u32 = 25
const K_BR: u32 = 26
const K_BR_IF: u32 = 27
const K_BR_TABLE: u32 = 28
const K_RETURN: u32 = 29
const K_TRAP: u32 = 30
const K_CALL: u32 = 31

// Immediate shapes of prefixed opcodes (PREFIXED); must equal FuelScan.ts's P_*.
const P_NONE: u32 = 1
const P_U32: u32 = 2
const P_U32X2: u32 = 3
const P_MEMARG: u32 = 4
const P_MEMARG_LANE: u32 = 5
const P_BYTES16: u32 = 6
const P_BYTE: u32 = 7

const MAX_LOCALS: u64 = 50_000

const TABLES: usize = memory.data(2048, 16)
const KIND: usize = TABLES
const CONTROL_U32: usize = TABLES + 256
const PREFIXED: usize = TABLES + 512
const VALTYPE: usize = TABLES + 1280
const BLOCKTYPE1: usize = TABLES + 1536
const COST: usize = TABLES + 1792

/** The injected sequences of the current body (see FuelScan.ts), with room for a word copy's over-read. */
const TPL: usize = memory.data(160, 16)
/** The fuel global's index, as a shortest u32 LEB128. */
const GLOBAL: usize = memory.data(8, 8)
let globalLength: usize = 0

/** Room kept free past a write: the most bytes injected at one point and the 7 a word copy may write past its end. */
const MAX_INJECTION: usize = 80

/** Position after the last `readU32`. */
let pos: usize = 0
/** End of memory in bytes (cached; updated when the scan grows memory). */
let memoryEnd: usize = 0
/** Where `run` stopped: input and output positions. */
let inStop: usize = 0
let outStop: usize = 0

/** The first address the driver may use. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15
}

/** Address of the 2048 bytes of tables the driver fills. */
export function tables(): usize {
  return TABLES
}

/** The input position where the last `run` stopped (after its last completed body). */
export function inPosition(): usize {
  return inStop
}

/** The output position where the last `run` stopped. */
export function outPosition(): usize {
  return outStop
}

/** Grows memory so that `[0, limit)` is addressable; false when memory cannot grow. */
@inline
function room(limit: usize): bool {
  if (limit <= memoryEnd) return true
  return grow(limit)
}

function grow(limit: usize): bool {
  const have = <usize>memory.size() << 16
  if (limit > have) {
    let pages = <i32>((limit - have + 0xffff) >> 16)
    const more = <i32>(have >> 16) // at least double, as the JS writer does
    if (more > pages) pages = more
    if (memory.grow(pages) < 0 && memory.grow(<i32>((limit - have + 0xffff) >> 16)) < 0) return false
  }
  memoryEnd = <usize>memory.size() << 16
  return true
}

/** A u32 LEB128 at `p` with ByteReader.u32's checks (≤ 5 bytes, the 5th ≤ 0x0f); -1 when they fail. */
function readU32(p: usize): i64 {
  let result: u32 = 0
  let shift: u32 = 0
  for (let i = 0; i < 4; i++) {
    const b = <u32>load<u8>(p++)
    result |= (b & 0x7f) << shift
    if (b < 0x80) {
      pos = p
      return <i64>result
    }
    shift += 7
  }
  const b = <u32>load<u8>(p++)
  if (b > 0x0f) return -1
  pos = p
  return <i64>(result | (b << 28))
}

/** Skips a u64 LEB128 at `p` (≤ 10 bytes, the 10th ≤ 0x01); the next position, or 0. */
function skipU64(p: usize): usize {
  for (let i = 0; i < 9; i++) if (load<u8>(p++) < 0x80) return p
  return load<u8>(p++) <= 0x01 ? p : 0
}

/** Skips an s32 LEB128 at `p` (≤ 5 bytes, the 5th's unused bits equal to its sign bit); the next position, or 0. */
function skipS32(p: usize): usize {
  for (let i = 0; i < 4; i++) if (load<u8>(p++) < 0x80) return p
  const b = <u32>load<u8>(p++)
  if (b >= 0x80) return 0
  const high = b & 0x78
  return high == 0 || high == 0x78 ? p : 0
}

/** Skips an s64 LEB128 at `p` (≤ 10 bytes, the 10th 0x00 or 0x7f); the next position, or 0. */
function skipS64(p: usize): usize {
  for (let i = 0; i < 9; i++) if (load<u8>(p++) < 0x80) return p
  const b = load<u8>(p++)
  return b == 0x00 || b == 0x7f ? p : 0
}

/** Skips a multi-byte s33 ≥ 0 at `p` (a block type's type index ≥ 64); the next position, or 0. */
function skipTypeIndex(p: usize): usize {
  for (let i = 0; i < 4; i++) {
    const b = <u32>load<u8>(p++)
    if (b < 0x80) return (b & 0x40) != 0 ? 0 : p
  }
  const b = <u32>load<u8>(p++)
  return b < 0x80 && (b & 0x70) == 0 ? p : 0
}

/** Bytes of the shortest u32 LEB128 of `v`. */
@inline
function lebWidth(v: u64): usize {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5
}

/** Writes the shortest u32 LEB128 of `v` at `o`; returns the next position. */
function putU32(o: usize, v: u32): usize {
  while (v >= 0x80) {
    store<u8>(o++, (v & 0x7f) | 0x80)
    v >>= 7
  }
  store<u8>(o++, v)
  return o
}

/** Writes the shortest signed LEB128 of a non-negative `v` at `o`. */
function putCost(o: usize, v: u64): usize {
  if (v < 0x40) {
    store<u8>(o, <u8>v)
    return o + 1
  }
  if (v < 0x2000) {
    store<u8>(o, <u8>((v & 0x7f) | 0x80))
    store<u8>(o + 1, <u8>(v >> 7))
    return o + 2
  }
  for (;;) {
    const b = v & 0x7f
    v >>= 7
    if (v == 0 && b < 0x40) {
      store<u8>(o++, <u8>b)
      return o
    }
    store<u8>(o++, <u8>(b | 0x80))
  }
  return o // not reached
}

/**
 * Copies `[from, to)` to `o` in 8-byte words (a long run is one
 * `memory.copy`). Over-reads the source and over-writes the output by up to
 * 7 bytes: the driver pads the input, and the caller keeps that much room
 * past the output (the overwritten bytes are written again next).
 */
@inline
function copy(o: usize, from: usize, to: usize): usize {
  const n = to - from
  if (n >= 64) {
    memory.copy(o, from, n)
    return o + n
  }
  let i = from
  while (i < to) {
    store<u64>(o, load<u64>(i))
    i += 8
    o += 8
  }
  return o - (i - to)
}

/**
 * Rewrites bodies `index`… `count - 1` of a code section: the first one's
 * size field at `inAt`, the input ending at `inEnd` (the section's end, 16
 * bytes of padding after it), the parameter counts at `params` (i32 per
 * body), the output written from `outAt` (each body with its size field).
 * `fuelGlobal` is the fuel counter's index. Returns the index of the first
 * body it did not rewrite (`count` when all are done); `inPosition` and
 * `outPosition` then say where that body starts in the input and where its
 * output goes.
 */
export function run(index: u32, count: u32, inAt: usize, inEnd: usize, params: usize, outAt: usize, fuelGlobal: u32): u32 {
  globalLength = putU32(GLOBAL, fuelGlobal) - GLOBAL
  memoryEnd = <usize>memory.size() << 16
  let i = index
  let p = inAt
  let o = outAt
  while (i < count) {
    if (p >= inEnd) break
    const size = readU32(p)
    if (size < 0) break
    const start = pos
    if (start > inEnd || <u64>size > <u64>(inEnd - start)) break
    const end = start + <usize>size
    const prm = load<i32>(params + (<usize>i << 2))
    if (prm < 0) break
    const next = body(start, end, <u32>prm, fuelGlobal, o)
    if (next == 0) break
    o = next
    p = end
    i++
  }
  inStop = p
  outStop = o
  return i
}

/** Rewrites the body `[start, end)` (after its size field) to `o`, with its size field; the output's end, or 0. */
function body(start: usize, end: usize, params: u32, fuelGlobal: u32, sizeAt: usize): usize {
  let p = start
  // --- local declarations (§5.5.13): count, then (u32 count, value type) runs
  let runs = <u32>load<u8>(p++)
  if (runs >= 0x80) {
    const r = readU32(p - 1)
    if (r < 0) return 0
    runs = <u32>r
    p = pos
  }
  const declStart = p
  let declared: u64 = 0
  for (let i: u32 = 0; i < runs; i++) {
    if (p >= end) return 0
    let n = <u32>load<u8>(p++)
    if (n >= 0x80) {
      const r = readU32(p - 1)
      if (r < 0) return 0
      n = <u32>r
      p = pos
    }
    declared += n
    if (declared > 0xffffffff || load<u8>(VALTYPE + <usize>load<u8>(p++)) != 1) return 0
  }
  if (p > end) return 0
  const fuelLocal64 = <u64>params + declared
  if (fuelLocal64 + 1 > MAX_LOCALS) return 0
  const fuelLocal = <u32>fuelLocal64

  // --- templates of the injected sequences for this function's fuel local (see FuelScan.ts)
  const g = GLOBAL
  const gEnd = GLOBAL + globalLength
  let t = TPL
  store<u8>(t++, 0x23) // global.get $fuel; i64.const
  t = copy(t, g, gEnd)
  store<u8>(t++, 0x42)
  const GET_END = t
  store<u8>(t++, 0x20) // local.get $f; i64.const
  t = putU32(t, fuelLocal)
  store<u8>(t++, 0x42)
  const HEAD_END = t
  store<u8>(t++, 0x7d) // i64.sub; local.set $f
  store<u8>(t++, 0x21)
  t = putU32(t, fuelLocal)
  const SET_END = t
  // i64.sub; local.tee $f; i64.const 0; i64.lt_s; if; local.get $f; global.set $fuel; unreachable; end
  store<u8>(t++, 0x7d)
  store<u8>(t++, 0x22)
  t = putU32(t, fuelLocal)
  store<u8>(t++, 0x42)
  store<u8>(t++, 0x00)
  store<u8>(t++, 0x53)
  store<u8>(t++, 0x04)
  store<u8>(t++, 0x40)
  store<u8>(t++, 0x20)
  t = putU32(t, fuelLocal)
  store<u8>(t++, 0x24)
  t = copy(t, g, gEnd)
  store<u8>(t++, 0x00)
  store<u8>(t++, 0x0b)
  const TEE_END = t
  // local.get $f; i64.const 0; i64.lt_s; if; local.get $f; global.set $fuel; unreachable; end
  store<u8>(t++, 0x20)
  t = putU32(t, fuelLocal)
  store<u8>(t++, 0x42)
  store<u8>(t++, 0x00)
  store<u8>(t++, 0x53)
  store<u8>(t++, 0x04)
  store<u8>(t++, 0x40)
  store<u8>(t++, 0x20)
  t = putU32(t, fuelLocal)
  store<u8>(t++, 0x24)
  t = copy(t, g, gEnd)
  store<u8>(t++, 0x00)
  store<u8>(t++, 0x0b)
  const CHECK_END = t
  // local.get $f; global.set $fuel
  store<u8>(t++, 0x20)
  t = putU32(t, fuelLocal)
  store<u8>(t++, 0x24)
  t = copy(t, g, gEnd)
  const STORE_END = t
  // local.get $f; i64.const 0; i64.lt_s; if; unreachable; end
  store<u8>(t++, 0x20)
  t = putU32(t, fuelLocal)
  store<u8>(t++, 0x42)
  store<u8>(t++, 0x00)
  store<u8>(t++, 0x53)
  store<u8>(t++, 0x04)
  store<u8>(t++, 0x40)
  store<u8>(t++, 0x00)
  store<u8>(t++, 0x0b)
  const EXIT_END = t

  // --- output: the size field (its width guessed from the input's size, fixed at the end), the locals
  let guess: u64 = 2 * <u64>(end - start) + 16
  if (guess > 0xffffffff) guess = 0xffffffff
  let width = lebWidth(guess)
  if (!room(sizeAt + width + (p - declStart) + 16 + MAX_INJECTION)) return 0
  let o = putU32(sizeAt + width, runs + 1)
  o = copy(o, declStart, p)
  store<u8>(o++, 0x01) // 1 × i64: the fuel local
  store<u8>(o++, 0x7e)

  // --- the instructions
  let depth: u32 = 0 // open blocks; a label equal to `depth` is the function's own
  let segStart = p // first byte of the current basic block
  let segCost: u64 = 0 // its summed cost
  let segLoad = true // reload the local from the global first (entry, after calls, handlers)
  let segCheck = true // check after the charge (function entry, loop header)
  let segDead = false // unreachable code: nothing inserted
  let copyFrom = p // first input byte not copied to the output yet
  for (;;) {
    if (p >= end) return 0
    const at = p
    const op = <usize>load<u8>(p++)
    const kind = <u32>load<u8>(KIND + op)
    if (kind == K_BAIL) return 0
    let cost = <u64>load<u8>(COST + op)
    if (kind < K_CONTROL) {
      switch (kind) {
        case K_NONE:
          break
        case K_LOCAL:
        case K_GLOBAL: {
          // the fuel local and global come after every index the body may name
          let index = <u32>load<u8>(p++)
          if (index >= 0x80) {
            const r = readU32(p - 1)
            if (r < 0) return 0
            index = <u32>r
            p = pos
          }
          if (index >= (kind == K_LOCAL ? fuelLocal : fuelGlobal)) return 0
          break
        }
        case K_U32: {
          if (load<u8>(p++) >= 0x80) {
            if (readU32(p - 1) < 0) return 0
            p = pos
          }
          break
        }
        case K_MEMARG: {
          // align < 0x40 (no memory index), offset u64
          if (load<u8>(p++) >= 0x40) return 0
          if (load<u8>(p++) >= 0x80) {
            p = skipU64(p - 1)
            if (p == 0) return 0
          }
          break
        }
        case K_I32:
          if (load<u8>(p++) >= 0x80) {
            p = skipS32(p - 1)
            if (p == 0) return 0
          }
          break
        case K_I64:
          if (load<u8>(p++) >= 0x80) {
            p = skipS64(p - 1)
            if (p == 0) return 0
          }
          break
        case K_F32:
          p += 4
          break
        case K_F64:
          p += 8
          break
        case K_BLOCK: {
          const b = <usize>load<u8>(p)
          if (load<u8>(BLOCKTYPE1 + b) == 1) p++
          else if (b >= 0x80) {
            p = skipTypeIndex(p)
            if (p == 0) return 0
          } else return 0
          depth++
          break
        }
        case K_SELECT_T: {
          const n = <usize>load<u8>(p++)
          if (n >= 0x80 || p > end || n > end - p) return 0
          for (let i: usize = 0; i < n; i++) if (load<u8>(VALTYPE + <usize>load<u8>(p++)) != 1) return 0
          break
        }
        case K_REF_NULL: {
          const h = load<u8>(p++)
          if (h != 0x70 && h != 0x6f) return 0
          break
        }
        case K_PREFIX: {
          let sub = <u32>load<u8>(p++)
          if (sub >= 0x80) {
            const r = readU32(p - 1)
            if (r < 0) return 0
            sub = <u32>r
            p = pos
          }
          if (sub >= 256) return 0
          const at2 = (op - 0xfc) * 256 + <usize>sub
          const shape = <u32>load<u8>(PREFIXED + at2)
          if (shape == 0) return 0
          cost = 1
          switch (shape) {
            case P_NONE:
              break
            case P_U32X2:
              if (load<u8>(p++) >= 0x80) {
                if (readU32(p - 1) < 0) return 0
                p = pos
              }
            // falls through: the second index
            case P_U32:
              if (load<u8>(p++) >= 0x80) {
                if (readU32(p - 1) < 0) return 0
                p = pos
              }
              break
            case P_MEMARG:
            case P_MEMARG_LANE:
              if (load<u8>(p++) >= 0x40) return 0
              if (load<u8>(p++) >= 0x80) {
                p = skipU64(p - 1)
                if (p == 0) return 0
              }
              if (shape == P_MEMARG_LANE) p++
              break
            case P_BYTES16:
              p += 16
              break
            case P_BYTE:
              p++
              break
            default:
              return 0
          }
          break
        }
        default:
          return 0
      }
      segCost += cost
      continue
    }

    // --- control: the instruction ends a basic block
    for (let k = <u32>load<u8>(CONTROL_U32 + op); k > 0; k--) {
      if (load<u8>(p++) >= 0x80) {
        if (readU32(p - 1) < 0) return 0
        p = pos
      }
    }
    let blockEnd = p // where the basic block ends (after the instruction; `catch` ends it before)
    let markAt: usize = 0 // the fuel is stored before the instruction at markAt (0: nowhere)…
    let exit = false // …and checked (a way out of the function)
    switch (kind) {
      case K_LOOP:
      case K_IF: {
        const b = <usize>load<u8>(p)
        if (load<u8>(BLOCKTYPE1 + b) == 1) p++
        else if (b >= 0x80) {
          p = skipTypeIndex(p)
          if (p == 0) return 0
        } else return 0
        depth++
        segCost += cost
        blockEnd = p
        break
      }
      case K_ELSE:
        segCost += cost
        break
      case K_CATCH:
        // the handler runs from after the instruction, reloading; the catch's cost is charged to it
        blockEnd = at
        break
      case K_END:
        segCost += cost
        if (depth == 0) {
          markAt = at
          exit = true
        } else depth--
        break
      case K_DELEGATE:
        if (depth == 0) return 0
        depth--
        segCost += cost
        break
      case K_BR:
      case K_BR_IF: {
        let label = <u32>load<u8>(p++)
        if (label >= 0x80) {
          const r = readU32(p - 1)
          if (r < 0) return 0
          label = <u32>r
          p = pos
        }
        if (label == depth) {
          markAt = at
          exit = true
        }
        segCost += cost
        blockEnd = p
        break
      }
      case K_BR_TABLE: {
        let n = <u32>load<u8>(p++)
        if (n >= 0x80) {
          const r = readU32(p - 1)
          if (r < 0) return 0
          n = <u32>r
          p = pos
        }
        if (p > end || <usize>n > end - p) return 0
        let toFunction = false
        for (let i: u32 = 0; i <= n; i++) {
          // n labels, then the default
          if (p >= end) return 0
          let label = <u32>load<u8>(p++)
          if (label >= 0x80) {
            const r = readU32(p - 1)
            if (r < 0) return 0
            label = <u32>r
            p = pos
          }
          if (label == depth) toFunction = true
        }
        if (toFunction) {
          markAt = at
          exit = true
        }
        segCost += cost
        blockEnd = p
        break
      }
      case K_RETURN:
        markAt = at
        exit = true
        segCost += cost
        blockEnd = p
        break
      case K_TRAP:
      case K_CALL:
        markAt = at
        segCost += cost
        blockEnd = p
        break
      default:
        return 0
    }

    // --- end the basic block [segStart, blockEnd): inject at its start (load, charge, check) and at its mark
    if (!segDead) {
      if (segLoad || segCheck || segCost > 0) {
        if (!room(o + (segStart - copyFrom) + MAX_INJECTION)) return 0
        o = copy(o, copyFrom, segStart)
        // one expression: [global.get $fuel | local.get $f] [i64.const c; i64.sub] (local.set $f | local.tee $f; check)
        if (segCost > 0) {
          o = segLoad ? copy(o, TPL, GET_END) : copy(o, GET_END, HEAD_END)
          o = putCost(o, segCost)
          o = segCheck ? copy(o, SET_END, TEE_END) : copy(o, HEAD_END, SET_END)
        } else if (segLoad) {
          o = copy(o, TPL, GET_END - 1)
          o = segCheck ? copy(o, SET_END + 1, TEE_END) : copy(o, HEAD_END + 1, SET_END)
        } else if (segCheck) o = copy(o, TEE_END, CHECK_END)
        copyFrom = segStart
      }
      if (markAt != 0) {
        if (!room(o + (markAt - copyFrom) + MAX_INJECTION)) return 0
        o = copy(o, copyFrom, markAt)
        o = copy(o, CHECK_END, exit ? EXIT_END : STORE_END)
        copyFrom = markAt
      }
    }
    segStart = blockEnd
    segCost = 0
    segLoad = false
    segCheck = false
    segDead = false
    switch (kind) {
      case K_LOOP:
        segCheck = true
        break
      case K_CATCH:
        segStart = p
        segCost = cost
        segLoad = true
        break
      case K_END:
        if (depth == 0 && exit) {
          // the function's final `end`: it must close the body exactly at its last byte
          if (p != end) return 0
          if (!room(o + (end - copyFrom) + MAX_INJECTION)) return 0
          o = copy(o, copyFrom, end)
          // the size field: shortest form; move the body when the guessed width was wrong
          const bodyStart = sizeAt + width
          const size = o - bodyStart
          const actual = lebWidth(<u64>size)
          if (actual != width) {
            memory.copy(sizeAt + actual, bodyStart, size)
            o = o + actual - width
            width = actual
          }
          putU32(sizeAt, <u32>size)
          return o
        }
        break
      case K_BR:
      case K_BR_TABLE:
      case K_RETURN:
      case K_TRAP:
        segDead = true
        break
      case K_CALL:
        segLoad = true
        break
    }
  }
  return 0 // not reached
}
