// README says what `deno task test` runs; the script it runs must do it (it once did not run
// `deno task check`, which only CI's wrapper ran).
import { assert, assertEquals, assertStringIncludes } from "../helpers/assert.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("deno task test runs what README says: check, host tests, then the VM's", async () => {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  assertStringIncludes(readme, "`deno task test` runs `deno task check`");
  const task = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks.test;
  assertEquals(task, "bash scripts/test.sh");
  const script = await Deno.readTextFile(`${ROOT}/scripts/test.sh`);
  const code = script.split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n");
  const check = code.indexOf("deno task check");
  const host = code.indexOf("deno test");
  const vm = code.indexOf("scripts/test-in-vm.sh");
  assert(check >= 0 && host > check && vm > host, "check, then host tests, then the VM's");
});
