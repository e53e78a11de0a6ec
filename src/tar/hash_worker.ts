/**
 * Worker side of `hash.ts`: hashes chunks from the shared ring as the writer publishes them,
 * and posts the hex digest once the writer is done and every chunk is hashed.
 * @module
 */
import { createHash } from "node:crypto";

const scope = self as unknown as {
  onmessage: (
    e: MessageEvent<{ sab: SharedArrayBuffer; slots: number; slotBytes: number }>,
  ) => void;
  postMessage: (m: unknown) => void;
};
scope.onmessage = (e) => {
  const { sab, slots, slotBytes } = e.data;
  const ctl = new Int32Array(sab, 0, 4);
  const data = new Uint8Array(sab, 16, slots * slotBytes);
  const lens = new Int32Array(sab, 16 + slots * slotBytes, slots);
  const h = createHash("sha256");
  let hashed = 0;
  for (;;) {
    const written = Atomics.load(ctl, 0);
    if (hashed === written) {
      if (Atomics.load(ctl, 2) === 1 && Atomics.load(ctl, 0) === hashed) break;
      Atomics.wait(ctl, 0, written, 100); // bounded: re-checks the done flag
      continue;
    }
    const slot = hashed % slots;
    h.update(data.subarray(slot * slotBytes, slot * slotBytes + lens[slot]));
    Atomics.store(ctl, 1, ++hashed);
    Atomics.notify(ctl, 1);
  }
  scope.postMessage(h.digest("hex"));
};
