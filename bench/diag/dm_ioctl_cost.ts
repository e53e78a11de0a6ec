/**
 * Inside the VM: what the ioctl path of an activation costs against `dmsetup` processes, in one
 * Deno process: opening the control device (binding the few libc symbols it needs, then the
 * version ioctl), binding all of libc as the tar applier does (for comparison), one DEV_STATUS
 * and one TABLE_STATUS ioctl, and one `dmsetup version` process, ROUNDS times.
 *   bash scripts/vm.sh -- deno run -A bench/diag/dm_ioctl_cost.ts [ROUNDS]
 * With `bind fast` or `bind struct`, only the first binding of the device calls' seven symbols
 * in this process, declared with plain results (Deno compiles a fast-call trampoline for each)
 * or with one-field struct results (libffi calls, no trampoline), as src/host/libc.ts does:
 *   bash scripts/vm.sh -- bash -c 'for i in 1 2 3; do for m in fast struct; do
 *     deno run -A bench/diag/dm_ioctl_cost.ts bind $m; done; done'
 * @module
 */
import { DmControl } from "../../src/devmapper/dm_control.ts";
import { libc, LIBC_PATH } from "../../src/host/libc.ts";

const ms = (a: number, b: number) => (b - a).toFixed(1);

if (Deno.args[0] === "bind") {
  const struct = Deno.args[1] === "struct";
  const R = (r: "i32" | "usize") => struct ? { struct: [r] } : r === "usize" ? "pointer" : r;
  const a = performance.now();
  Deno.dlopen(LIBC_PATH, {
    openat: { parameters: ["i32", "buffer", "i32", "u32"], result: R("i32") },
    statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: R("i32") },
    mknodat: { parameters: ["i32", "buffer", "u32", "u64"], result: R("i32") },
    unlinkat: { parameters: ["i32", "buffer", "i32"], result: R("i32") },
    ioctl: { parameters: ["i32", "u64", "buffer"], result: R("i32") },
    __errno_location: { parameters: [], result: R("usize") },
    memcpy: { parameters: ["buffer", "usize", "usize"], result: R("usize") },
  } as Deno.ForeignLibraryInterface);
  console.log(`bind seven, ${struct ? "struct" : "fast"}: ${ms(a, performance.now())} ms`);
  Deno.exit(0);
}

const rounds = Number(Deno.args[0] ?? 5);
const t0 = performance.now();
const ctl = DmControl.open();
const t1 = performance.now();
if (!ctl) throw new Error("no device-mapper here (or no ffi grant)");
libc();
const t2 = performance.now();
console.log(
  `open control (its symbols bound) ${ms(t0, t1)} ms; all of libc bound ${ms(t1, t2)} ms`,
);
for (let i = 0; i < rounds; i++) {
  const a = performance.now();
  try {
    ctl.info("no-such-device");
  } catch { /* ENXIO */ }
  const b = performance.now();
  try {
    ctl.read("no-such-device", "table");
  } catch { /* ENXIO */ }
  const c = performance.now();
  await new Deno.Command("/usr/sbin/dmsetup", { args: ["version"], stdout: "null" }).output();
  const d = performance.now();
  console.log(
    `info ioctl ${ms(a, b)} ms; table ioctl ${ms(b, c)} ms; dmsetup version ${ms(c, d)} ms`,
  );
}
