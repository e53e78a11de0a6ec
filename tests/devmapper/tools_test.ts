import { assert } from "../helpers/assert.ts";
import { TOOLS } from "../../src/devmapper/tools.ts";

Deno.test("the thinimage task may run every device-mapper tool, by the same absolute path", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const task: string = config.tasks.thinimage;
  const allowed = /--allow-run=(\S+)/.exec(task)?.[1]?.split(",") ?? [];
  for (const path of Object.values(TOOLS)) {
    assert(path.startsWith("/"), `${path} is not absolute`);
    assert(allowed.includes(path), `deno.json's thinimage task lacks --allow-run=${path}`);
  }
});
