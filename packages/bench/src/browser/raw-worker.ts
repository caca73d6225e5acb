/**
 * The plain Web Worker of the browser suite's raw baselines: echoes every
 * message (`postMessage` round trip) and, once given a `SharedArrayBuffer`,
 * answers `Atomics` requests — it sleeps in `Atomics.wait` on slot 0 and
 * answers request n by storing n in slot 1 and notifying; -1 stops the loop
 * (ECMAScript §25.4 `Atomics.wait` / `Atomics.notify`). Given `["spin",
 * buffer]`, it answers the same requests busy-polling slot 0 instead (no
 * wait, no notify: the limit of a round trip).
 *
 * @since 0.1.0
 */
const scope = self as unknown as {
  onmessage: ((e: MessageEvent) => void) | null
  postMessage: (m: unknown) => void
}

scope.onmessage = (e: MessageEvent) => {
  const data = e.data as unknown
  if (Array.isArray(data) && data[0] === "spin" && data[1] instanceof SharedArrayBuffer) {
    const i32 = new Int32Array(data[1])
    scope.postMessage("spin-ready")
    let seen = 0
    for (;;) {
      let n = Atomics.load(i32, 0)
      while (n === seen) n = Atomics.load(i32, 0)
      seen = n
      if (seen < 0) break
      Atomics.store(i32, 1, seen)
    }
    return
  }
  if (data instanceof SharedArrayBuffer) {
    const i32 = new Int32Array(data)
    scope.postMessage("atomics-ready")
    let seen = 0
    for (;;) {
      Atomics.wait(i32, 0, seen)
      seen = Atomics.load(i32, 0)
      if (seen < 0) break
      Atomics.store(i32, 1, seen)
      Atomics.notify(i32, 1)
    }
    return
  }
  scope.postMessage(data)
}
