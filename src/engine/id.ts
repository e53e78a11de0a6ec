/**
 * Run ids: ULIDs (26 characters, Crockford base32), so ids sort by creation time and a
 * person can tell runs apart in `thinimage history`.
 *
 * @example
 * ```ts
 * import { newRunId } from "./id.ts";
 * newRunId(); // "01JDQ3Z8W5K6M9V1T2R3S4X5Y6"
 * ```
 * @module
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A new ULID for time `now` (ms since epoch). */
export function newRunId(now: number = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let rand = "";
  for (const b of bytes) rand += ALPHABET[b % 32];
  return time + rand;
}

/** True for a string shaped like a run id (to tell `history RUN-ID` from `history RESOURCE`). */
export function isRunId(s: string): boolean {
  return /^[0-9A-HJKMNP-TV-Z]{26}$/.test(s);
}
