import { parseArgs as nodeParseArgs } from "node:util";
import { assertEquals } from "../helpers/assert.ts";
import { parseArgs } from "../../src/cli/args.ts";

const OPTIONS = {
  name: { type: "string" },
  pool: { type: "string", short: "p" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v" },
} as const;

/** The result, or the error's message, as text. */
function outcome(f: () => { values: object; positionals: string[] }): string {
  try {
    const { values, positionals } = f();
    return JSON.stringify({ values: { ...values }, positionals });
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

Deno.test("args: parses as node:util's parseArgs (strict, positionals) does, errors included", () => {
  const cases = [
    ["a", "--name", "x"],
    ["--name=x", "a"],
    ["--name="],
    ["--name"],
    ["--name", "-x"],
    ["--name", "-"],
    ["--json=1"],
    ["--bogus"],
    ["--bogus=3"],
    ["---x"],
    ["--=x"],
    ["--toString"],
    ["--__proto__"],
    ["-qv", "a"],
    ["-x"],
    ["-p", "foo"],
    ["-pfoo"],
    ["-p", "-x"],
    ["-p"],
    ["-qp", "v"],
    ["--", "-x", "--json"],
    ["-"],
    ["a", "b", "--json", "--json"],
    ["--name", "a", "--name", "b"],
  ];
  for (const args of cases) {
    const want = outcome(() =>
      nodeParseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
    );
    assertEquals(outcome(() => parseArgs({ args, options: OPTIONS })), want, args.join(" "));
  }
});
