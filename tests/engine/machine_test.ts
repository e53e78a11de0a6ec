import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { machine } from "../../src/engine/machine.ts";
import { encodeJson } from "../../src/engine/codec.ts";

const step = () => Promise.resolve(1);

Deno.test("the builder keeps states in order, with per-transition options over the machine's", () => {
  const m = machine<null, number>("ok", { timeoutMs: 1000, retry: { maxAttempts: 2 } })
    .start("a", step)
    .to("b", step, { timeoutMs: 50, retry: { maxAttempts: 7 } })
    .end("z");
  assertEquals(m.states, ["a", "b"]);
  assertEquals(m.endState, "z");
  assertEquals(m.transitions.map((t) => [t.timeoutMs, t.retry.maxAttempts]), [[1000, 2], [50, 7]]);
});

Deno.test("the builder refuses bad names and options at once", () => {
  assertThrows(() => machine("Bad Name"), TypeError, "lowercase");
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => (machine<null, number>("dup").start("a", step) as any).to("a", step),
    TypeError,
    "appears twice",
  );
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => (machine<null, number>("dup").start("a", step) as any).end("a"),
    TypeError,
    "also a transition",
  );
  assertThrows(() => machine<null, number>("t").start("a", step, { timeoutMs: 0 }), RangeError);
  assertThrows(
    () => machine<null, number>("r").start("a", step, { retry: { maxAttempts: 0 } }),
    RangeError,
  );
});

Deno.test("JSON encoding refuses values it would lose, naming where", () => {
  assertEquals(
    encodeJson({ a: [1, "x", null, { b: true }], gone: undefined }),
    '{"a":[1,"x",null,{"b":true}]}',
  );
  assertThrows(
    () => encodeJson({ a: { b: new Date() } }, "request"),
    TypeError,
    "request.a.b is a Date",
  );
  assertThrows(() => encodeJson({ n: NaN }, "r"), TypeError, "r.n is NaN");
  assertThrows(() => encodeJson([1, undefined], "r"), TypeError, "r[1] is undefined");
  assertThrows(() => encodeJson({ f: () => 1 }, "r"), TypeError, "r.f is a function");
  assertThrows(() => encodeJson({ big: 1n }, "r"), TypeError, "r.big is a bigint");
  class Layer {
    #secret = 1;
    get secret() {
      return this.#secret;
    }
  }
  assertThrows(() => encodeJson({ l: new Layer() }, "r"), TypeError, "r.l is a Layer");
});
