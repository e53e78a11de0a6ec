import { assertEquals } from "../helpers/assert.ts";

/**
 * The modules a new activation of an image pulled here loads before it acts (the CLI, the
 * activate command, the agent, the pool): without Deno's Node layer, which any Node module but
 * node:sqlite loads, and which on the host costs more CPU than all of that path's own modules.
 */
const WARM_PATH = [
  "src/main.ts",
  "src/cli/commands/activate.ts",
  "src/agent/runtime.ts",
  "src/devmapper/pool.ts",
  "src/devmapper/thin.ts",
];

interface Info {
  modules: {
    specifier: string;
    dependencies?: { isDynamic?: boolean; code?: { specifier: string } }[];
  }[];
}

Deno.test("warm path: static imports reach no Node module but node:sqlite", async () => {
  const root = new URL("../../", import.meta.url);
  const bySpecifier = new Map<string, Info["modules"][number]>();
  for (const file of WARM_PATH) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", file],
      cwd: root,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assertEquals(out.code, 0);
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as Info;
    for (const m of info.modules) bySpecifier.set(m.specifier, m);
  }
  const seen = new Set<string>();
  const todo = WARM_PATH.map((p) => new URL(p, root).href);
  const node = new Set<string>();
  while (todo.length > 0) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of bySpecifier.get(s)?.dependencies ?? []) {
      const t = d.code?.specifier;
      if (!t || d.isDynamic) continue;
      if (t.startsWith("node:")) node.add(`${t} <- ${s.slice(root.href.length)}`);
      todo.push(t);
    }
  }
  assertEquals([...node].sort(), ["node:sqlite <- src/store/db.ts"]);
});
