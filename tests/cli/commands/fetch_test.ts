/**
 * `thinimage fetch` and `thinimage images --remote` as a user runs them: a separate process,
 * the network limited to the S3 endpoint's host, exit codes and the `--json` document.
 */
import { assert, assertEquals, assertStringIncludes } from "../../helpers/assert.ts";
import { s3Env } from "../../helpers/s3.ts";

const MAIN = new URL("../../../src/main.ts", import.meta.url).pathname;

async function thinimage(stateDir: string, ...args: string[]) {
  const env = s3Env();
  const host = new URL(env.endpoint).host;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${stateDir}`,
      `--allow-write=${stateDir}`,
      "--allow-env",
      "--allow-sys=osRelease",
      `--allow-net=${host}`,
      MAIN,
      "--state-dir",
      stateDir,
      ...args,
    ],
    env: {
      THINIMAGE_S3_ENDPOINT: env.endpoint,
      THINIMAGE_BUCKET: env.bucket,
      NO_COLOR: "1",
      // Anonymous, whatever the test runner's environment holds.
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("cli fetch: --json in layer order; a second image downloads only its own layers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const golang = await thinimage(dir, "--json", "fetch", "golang");
    assertEquals(golang.code, 0, golang.stderr);
    const doc = JSON.parse(golang.stdout);
    assertEquals(Object.keys(doc), ["image", "manifest", "layers"]);
    assertEquals(doc.image, "golang");
    assert(/^sha256:[0-9a-f]{64}$/.test(doc.manifest));
    assertEquals(
      doc.layers.map((l: { key: string }) => l.key),
      [1, 2, 3, 4, 5].map((i) => `images/golang/${i}.tar`),
    );
    for (const l of doc.layers) {
      assertEquals(Object.keys(l), ["key", "size", "sha256", "downloaded"]);
      assertEquals(l.downloaded, true);
      assertEquals((await Deno.stat(`${dir}/blobs/sha256/${l.sha256}`)).size, l.size);
    }
    const node = JSON.parse((await thinimage(dir, "--json", "fetch", "node")).stdout);
    assertEquals(node.layers.map((l: { downloaded: boolean }) => l.downloaded), [
      false,
      false,
      false,
      true,
      true,
    ]);
    const human = await thinimage(dir, "fetch", "node");
    assertEquals([human.code, human.stdout], [0, ""], "human output goes to stderr");
    assertStringIncludes(human.stderr, "0 downloaded");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli fetch: exit codes name what was wrong", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A name typed on the command line is the command line's fault (2), not hostile input.
    const bad = await thinimage(dir, "--json", "fetch", "Bad/Name");
    assertEquals(bad.code, 2);
    assertEquals(JSON.parse(bad.stdout).error.code, 2);
    assertStringIncludes(bad.stderr, 'invalid image name "Bad/Name" for IMAGE');
    // An image the bucket does not have: the source lacks it (69), as any missing object.
    const missing = await thinimage(dir, "fetch", "no-such-image");
    assertEquals(missing.code, 69);
    assertStringIncludes(missing.stderr, "image no-such-image is not in the bucket");
    const denied = await thinimage(dir, "fetch", "node", "--bucket", s3Env().privateBucket);
    assertEquals(denied.code, 69);
    assertStringIncludes(denied.stderr, "access denied");
    const usage = await thinimage(dir, "fetch", "node", "--max-layers", "lots");
    assertEquals(usage.code, 2);
    const tooMany = await thinimage(dir, "fetch", "node", "--max-layers", "4");
    assertEquals(tooMany.code, 65);
    assertStringIncludes(tooMany.stderr, "images/node/5.tar");
    const elsewhere = await thinimage(dir, "fetch", "node", "--endpoint", "http://127.0.0.2:7480");
    assertEquals(elsewhere.code, 1, "the network permission names only the configured endpoint");
    assertStringIncludes(elsewhere.stderr, "--allow-net");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli images --remote: every image with layer count and size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await thinimage(dir, "--json", "images", "--remote");
    assertEquals(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    const golang = doc.images.find((i: { image: string }) => i.image === "golang");
    assertEquals(golang.layers, 5);
    assert(golang.size > 0);
    assertEquals((await thinimage(dir, "images")).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
