/**
 * The worker side of {@linkcode FileWriter} (see there): finishes queued files in order.
 * @module
 */
/// <reference lib="deno.worker" />
import { libc, O, SyscallError } from "../host/libc.ts";
import { CALLS, CTL, FLAG_CHMOD, FLAG_CHOWN, RECORD } from "./file_writer.ts";

self.onmessage = (e: MessageEvent) => {
  const { blob, ctl, rec, capacity } = e.data as {
    blob: string;
    ctl: Int32Array;
    rec: Float64Array;
    capacity: number;
  };
  const c = libc();
  let src: number;
  try {
    src = c.open(blob, O.RDONLY);
    self.postMessage({ ino: c.lstatat(src, "").ino });
  } catch (err) {
    self.postMessage({ error: String(err) });
    return;
  }
  let tail = 0;
  let failed = false;
  for (;;) {
    const head = Atomics.load(ctl, CTL.HEAD);
    while (tail < head) {
      const i = (tail % capacity) * RECORD;
      const fd = rec[i];
      // After a failure, or records still queued when the main thread gave up: close only.
      const stopping = failed || Atomics.load(ctl, CTL.FINISH) !== 0;
      let call = 0;
      try {
        if (!stopping) {
          const size = rec[i + 2];
          if (size > 0) c.copyRange(src, rec[i + 1], fd, size);
          const flags = rec[i + 7];
          call = 1;
          if (flags & FLAG_CHOWN) c.fchown(fd, rec[i + 3], rec[i + 4]);
          call = 2;
          if (flags & FLAG_CHMOD) c.fchmod(fd, rec[i + 5]);
          call = 3;
          c.futimes(fd, rec[i + 6]);
        }
        call = 4;
        c.close(fd);
      } catch (err) {
        if (!failed) {
          failed = true;
          Atomics.store(ctl, CTL.ERRNO, err instanceof SyscallError ? err.errno : 5);
          Atomics.store(ctl, CTL.CALL, Math.min(call, CALLS.length - 1));
          Atomics.store(ctl, CTL.AT, tail);
          Atomics.store(ctl, CTL.STATE, 1);
        }
        if (call < 4) {
          try {
            c.close(fd);
          } catch { /* closing is all that is left */ }
        }
      }
      Atomics.store(ctl, CTL.TAIL, ++tail);
      // As on the other side: the main thread waits on TAIL's old value, nothing is missed.
      if (Atomics.load(ctl, CTL.MAIN_WAITS)) Atomics.notify(ctl, CTL.TAIL);
    }
    if (Atomics.load(ctl, CTL.FINISH) !== 0 && tail === Atomics.load(ctl, CTL.HEAD)) break;
    Atomics.store(ctl, CTL.WORKER_WAITS, 1);
    Atomics.wait(ctl, CTL.HEAD, head, 1000);
    Atomics.store(ctl, CTL.WORKER_WAITS, 0);
  }
  c.close(src);
};
