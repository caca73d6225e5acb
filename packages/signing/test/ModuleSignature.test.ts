import { describe, expect, it } from "@effect/vitest"
import {
  decodeSignature,
  encodeSignature,
  type ModuleSignature,
  SIGNATURE_CONTEXT,
  signedMessage
} from "../src/index.js"
import { fromBase64, toBase64 } from "../src/internal/encoding.js"
import { fromUtf8 } from "./fixtures.js"

describe("signature format v1", () => {
  const signature: ModuleSignature = {
    v: 1,
    alg: "ed25519",
    keyId: "0123456789abcdef",
    name: "counter",
    version: "1.2.3",
    hash: "ab".repeat(32),
    sig: Uint8Array.from({ length: 64 }, (_, i) => i)
  }

  it("encodes compact JSON in the documented field order and decodes it back", () => {
    const bytes = encodeSignature(signature)
    expect(fromUtf8(bytes)).toBe(
      `{"v":1,"alg":"ed25519","keyId":"0123456789abcdef","name":"counter","version":"1.2.3","hash":"${"ab".repeat(32)}","sig":"${toBase64(signature.sig)}"}`
    )
    expect(decodeSignature(bytes)).toEqual({ ok: true, value: signature })
  })

  it("the signed message is context, hash, name and version joined by newlines", () => {
    expect(fromUtf8(signedMessage("h", "n", "v"))).toBe(`${SIGNATURE_CONTEXT}\nh\nn\nv`)
    expect(SIGNATURE_CONTEXT).toBe("agent-runtime/module-signature/v1")
  })

  it("base64 is RFC 4648 and strictly canonical", () => {
    for (const [bytes, text] of [
      [[], ""],
      [[0x66], "Zg=="],
      [[0x66, 0x6f], "Zm8="],
      [[0x66, 0x6f, 0x6f], "Zm9v"],
      [[0xfb, 0xff], "+/8="]
    ] as const) {
      expect(toBase64(Uint8Array.from(bytes))).toBe(text)
      expect(fromBase64(text)).toEqual(Uint8Array.from(bytes))
    }
    expect(fromBase64("Zh==")).toBeUndefined() // non-zero trailing bits
    expect(fromBase64("Zg")).toBeUndefined() // missing padding
    expect(fromBase64("Zg =")).toBeUndefined()
    expect(fromBase64("Z===")).toBeUndefined()
  })
})
