/**
 * The worker side of {@linkcode FileWriter} (see there): finishes queued files in order.
 * @module
 */
/// <reference lib="deno.worker" />
import { libc, O, SyscallError } from "../host/libc.ts";
import {
  AT_BLOB,
  CALLS,
  CTL,
  FLAG_CHMOD,
  FLAG_CHOWN,
  FLAG_CLOSE,
  NAME_SLOT,
  RECORD,
  TAIL_EVERY,
  WAKE_BATCH,
} from "./file_writer.ts";

/** As the main thread creates files (target.ts): never through a link, never an existing name. */
const CREATE = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.NOCTTY;

self.onmessage = (e: MessageEvent) => {
  const { blob, ctl, rec, names, capacity } = e.data as {
    blob: string;
    ctl: Int32Array;
    rec: Float64Array;
    names: Uint8Array;
    capacity: number;
  };
  const c = libc();
  let src = -1;
  let failed = false;
  /** Report the first failure (the main thread throws it); later records are only closed. */
  const fail = (err: unknown, call: number, at: number) => {
    if (failed) return;
    failed = true;
    Atomics.store(ctl, CTL.ERRNO, err instanceof SyscallError ? err.errno : 5);
    Atomics.store(ctl, CTL.CALL, Math.min(call, CALLS.length - 1));
    Atomics.store(ctl, CTL.AT, at);
    Atomics.store(ctl, CTL.STATE, 1);
  };
  try {
    src = c.open(blob, O.RDONLY);
    new Float64Array(ctl.buffer, CTL.INO * 4, 1)[0] = c.lstatat(src, "").ino;
  } catch (err) {
    // What the main thread queued meanwhile is closed unwritten, as after any failure.
    fail(err, CALLS.indexOf("open"), AT_BLOB);
  }
  Atomics.store(ctl, CTL.READY, 1);
  Atomics.notify(ctl, CTL.READY);
  let tail = 0;
  for (;;) {
    const head = Atomics.load(ctl, CTL.HEAD);
    while (tail < head) {
      const slot = tail % capacity;
      const i = slot * RECORD;
      let fd = rec[i];
      // After a failure, or records still queued when the main thread gave up: close only.
      const stopping = failed || Atomics.load(ctl, CTL.FINISH) !== 0;
      let call = 0;
      try {
        if (rec[i + 7] & FLAG_CLOSE) {
          call = 4;
        } else if (fd < 0) {
          // Never created when stopping: nothing to close either.
          if (stopping) call = 4;
          else {
            call = 5;
            const at = slot * NAME_SLOT;
            fd = c.openat(
              rec[i + 8],
              names.subarray(at, at + rec[i + 9]),
              CREATE,
              rec[i + 5] & 0o777,
            );
            call = 0;
          }
        }
        if (!stopping && call === 0) {
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
        if (fd >= 0) c.close(fd);
      } catch (err) {
        fail(err, call, tail);
        if (call < 4 && fd >= 0) {
          try {
            c.close(fd);
          } catch { /* closing is all that is left */ }
        }
      }
      // Published every few records (the main thread reads it rarely; a store per record
      // kept the line moving between cores), and always once caught up.
      if (++tail % TAIL_EVERY === 0 || tail === head) Atomics.store(ctl, CTL.TAIL, tail);
      // As on the other side: the main thread waits on TAIL's old value, nothing is missed;
      // it is woken once a batch of slots is free, or the ring is empty (it drains).
      if (
        (tail % WAKE_BATCH === 0 || tail === head) && Atomics.load(ctl, CTL.MAIN_WAITS)
      ) Atomics.notify(ctl, CTL.TAIL);
    }
    if (Atomics.load(ctl, CTL.FINISH) !== 0 && tail === Atomics.load(ctl, CTL.HEAD)) break;
    Atomics.store(ctl, CTL.WORKER_WAITS, 1);
    Atomics.wait(ctl, CTL.HEAD, head, 1000);
    Atomics.store(ctl, CTL.WORKER_WAITS, 0);
  }
  if (src >= 0) c.close(src);
};
