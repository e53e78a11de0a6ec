/**
 * Inside the VM: what the ioctl path of an activation costs against `dmsetup` processes, in one
 * Deno process: opening the control device (binding the few libc symbols it needs, then the
 * version ioctl), binding all of libc as the tar applier does (for comparison), one DEV_STATUS
 * and one TABLE_STATUS ioctl, and one `dmsetup version` process, ROUNDS times.
 *   bash scripts/vm.sh -- deno run -A bench/diag/dm_ioctl_cost.ts [ROUNDS]
 * @module
 */
import { DmControl } from "../../src/devmapper/dm_control.ts";
import { libc } from "../../src/host/libc.ts";

const rounds = Number(Deno.args[0] ?? 5);
const ms = (a: number, b: number) => (b - a).toFixed(1);
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
