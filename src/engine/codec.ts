/**
 * Requests and responses are stored as JSON. JSON silently drops or mangles what it cannot
 * represent (a Date becomes a string, a Map `{}`, a class instance loses its methods and
 * private fields), so a run resumed after a crash would see a request with parts missing.
 * {@linkcode encodeJson} refuses such values instead, naming where in the value the problem is.
 *
 * @example
 * ```ts
 * import { encodeJson } from "./codec.ts";
 * encodeJson({ image: "alpine", layers: [1, 2] }); // '{"image":"alpine","layers":[1,2]}'
 * encodeJson({ at: new Date() }); // throws: request.at is a Date, which JSON does not keep
 * ```
 * @module
 */

/** Encode `value` as JSON, refusing anything that would not decode to an equal value. */
export function encodeJson(value: unknown, what = "value"): string {
  checkJsonSafe(value, what);
  return JSON.stringify(value);
}

/** Decode JSON text written by {@linkcode encodeJson}. */
export function decodeJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

function checkJsonSafe(v: unknown, path: string): void {
  if (v === null || typeof v === "string" || typeof v === "boolean") return;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TypeError(`${path} is ${v}, which JSON does not keep`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      if (x === undefined) {
        throw new TypeError(`${path}[${i}] is undefined, which JSON turns into null`);
      }
      checkJsonSafe(x, `${path}[${i}]`);
    });
    return;
  }
  if (typeof v === "object") {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (v as object).constructor?.name ?? "object";
      throw new TypeError(`${path} is a ${kind}, which JSON does not keep`);
    }
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      // An undefined property decodes as a missing one: the same to a typed reader.
      if (x === undefined) continue;
      checkJsonSafe(x, `${path}.${k}`);
    }
    return;
  }
  throw new TypeError(`${path} is a ${typeof v}, which JSON does not keep`);
}
