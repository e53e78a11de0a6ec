#!/usr/bin/env bash
# Inside the VM: where a warm activation's time goes, for one revision (default: the work tree).
#   bash scripts/vm.sh -- bash bench/diag/warm_phases.sh [REV] [ROUNDS]
# Pulls golang once (not timed), then per round times: an empty `deno run` (the floor); the
# CLI's --version (frame only); activating an existing name; a new name; a new name with Deno's
# lazy dynamic imports; a new name under --no-code-cache; importing the new-name path's modules
# without running them; Node modules alone; one dmsetup process from bash. Then once each, not
# timed: a timeline of new names (a preload stamps each child process's start and end, the SQLite
# statements and the exit, in ms since the shell started deno), strace of a new name (programs
# started, files opened, with time stamps) and a --cpu-prof of a new name. Output under
# .cache/diag/warm_phases/.
set -euo pipefail
cd "$(dirname "$0")/../.."
REV=${1:-}
ROUNDS=${2:-3}
OUT=$PWD/.cache/diag/warm_phases
rm -rf "$OUT"; mkdir -p "$OUT"
eval "$(bash scripts/s3-server.sh env)"
W=$(mktemp -d /var/tmp/thinimage-phases-XXXX)
APP=$W/app
mkdir -p "$APP"
if [ -n "$REV" ]; then git archive "$REV" src deno.json deno.lock | tar -x -C "$APP"
else cp -r src deno.json deno.lock "$APP/"; fi
: >"$W/empty.ts"
# Deno's Node modules: the first one loads the Node compatibility layer.
echo 'import "node:sqlite";' >"$W/node_sqlite.ts"
echo 'import "node:sqlite"; import "node:path";' >"$W/node_path.ts"
echo 'import "node:sqlite"; import "node:path"; import "node:util";' >"$W/node_util.ts"
echo 'import "node:sqlite"; import "node:path"; import "node:crypto";' >"$W/node_crypto.ts"
cat >"$W/modules.ts" <<X
await import("$APP/src/main.ts");
await import("$APP/src/cli/commands/activate.ts");
await import("$APP/src/agent/runtime.ts");
await import("$APP/src/devmapper/pool.ts");
await import("$APP/src/devmapper/thin.ts");
X
# The timeline's stamps, each on stderr when it happens: "TL EPOCH_MS WHAT".
cat >"$W/timeline.ts" <<'X'
const enc = new TextEncoder();
const stamp = (s: string) => Deno.stderr.writeSync(enc.encode(`TL ${Date.now()} ${s}\n`));
stamp("preload");
const C = Deno.Command;
(Deno as unknown as { Command: unknown }).Command = class extends C {
  #what: string;
  constructor(cmd: string | URL, opts?: Deno.CommandOptions) {
    super(cmd, opts);
    this.#what = `${cmd} ${(opts?.args ?? []).join(" ")}`;
  }
  override async output() {
    stamp(`spawn ${this.#what}`);
    try {
      return await super.output();
    } finally {
      stamp(`exited ${this.#what}`);
    }
  }
};
const exit = Deno.exit;
(Deno as unknown as { exit: unknown }).exit = (code?: number) => {
  stamp(`exit ${code}`);
  exit(code);
};
if (Deno.env.get("THINIMAGE_DIAG_TL_SQLITE")) {
  stamp("import node:sqlite");
  const { DatabaseSync } = await import("node:sqlite");
  stamp("imported node:sqlite");
  const ex = DatabaseSync.prototype.exec;
  DatabaseSync.prototype.exec = function (sql: string) {
    const r = ex.call(this, sql);
    stamp(`sql ${sql.slice(0, 40)}`);
    return r;
  };
}
X
FLAGS=$(deno eval "import { permissionFlags } from '$APP/src/cli/permissions.ts'; console.log(permissionFlags({ netHosts: ['127.0.0.1:7480'] }).join(' '))")
export THINIMAGE_S3_ENDPOINT=$THINIMAGE_TEST_S3_ENDPOINT THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
D=$W/state
mkdir -p "$D"
cli() { deno run --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" "$@"; }
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; echo $((($(date +%s%N) - s) / 1000000)); }
cli pool init --name thinimage-phases --data-size 2G >/dev/null
cli pull golang >/dev/null
cli activate golang --name warm0 --json >/dev/null # compiles every module of the path once
deno run -A "$W/modules.ts" >/dev/null
for n in node_sqlite node_path node_util node_crypto; do deno run -A "$W/$n.ts"; done
R=$OUT/results.txt
for r in $(seq 1 "$ROUNDS"); do
  echo "floor $(ms deno run "$W/empty.ts")" | tee -a "$R"
  echo "version $(ms cli --version)" | tee -a "$R"
  echo "same $(ms cli activate golang --name warm0 --json)" | tee -a "$R"
  echo "new $(ms cli activate golang --name "n$r" --json)" | tee -a "$R"
  # Deno builds the graph of every import("literal") it can see when a module loads (the
  # registry's commands, and through them the S3 SDK and the tar applier): lazily, not at all.
  echo "new-lazy-imports $(DENO_UNSTABLE_LAZY_DYNAMIC_IMPORTS=1 ms cli activate golang --name "l$r" --json)" | tee -a "$R"
  echo "new-no-code-cache $(ms deno run --no-code-cache --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" activate golang --name "c$r" --json)" | tee -a "$R"
  echo "modules $(ms deno run -A "$W/modules.ts")" | tee -a "$R"
  for n in node_sqlite node_path node_util node_crypto; do
    echo "$n $(ms deno run -A "$W/$n.ts")" | tee -a "$R"
  done
  echo "dmsetup $(ms /usr/sbin/dmsetup table thinimage-phases)" | tee -a "$R"
done
timeline() { # timeline NAME [ENV...]: one new name, stamps relative to the shell's start
  local name=$1; shift
  local s=$(($(date +%s%N) / 1000000))
  env "$@" deno run --no-check $FLAGS --preload "$W/timeline.ts" "$APP/src/main.ts" --state-dir "$D" \
    activate golang --name "$name" --json 2>&1 >/dev/null | awk -v s="$s" '$1 == "TL" {$2 = $2 - s; print}'
  echo "TL $(($(date +%s%N) / 1000000 - s)) end (the shell saw the process end)"
}
for r in 1 2; do
  echo "timeline of a new name, round $r:"; timeline "t$r" | tee -a "$OUT/timeline.txt"
done
echo "timeline with SQLite stamps (node:sqlite imported by the preload):"
timeline t3 THINIMAGE_DIAG_TL_SQLITE=1 | tee -a "$OUT/timeline.txt"
strace -f -tt --seccomp-bpf -e trace=execve,openat,exit_group,fsync,fdatasync,clone,clone3,vfork,wait4 -o "$OUT/new.strace" \
  deno run --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" activate golang --name s1 --json >/dev/null
echo "programs started by a new name:"
grep 'execve(' "$OUT/new.strace" | grep -v ENOENT | sed -E 's/.*execve\("([^"]+)", \[[^,]*(, "[^"]*")?(, "[^"]*")?.*/  \1\2\3/' | sort | uniq -c
(cd "$OUT" && deno run --cpu-prof --cpu-prof-dir="$OUT" --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" activate golang --name p1 --json >/dev/null)
echo "medians (ms):"
for what in floor version same new new-lazy-imports new-no-code-cache modules node_sqlite node_path node_util node_crypto dmsetup; do
  m=$(awk -v w="$what" '$1 == w {print $2}' "$R" | sort -n |
    awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
  echo "  $what $m"
done
