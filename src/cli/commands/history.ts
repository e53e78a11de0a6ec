/**
 * `thinimage history [RUN-ID | RESOURCE]`: what the state machines did, event by event, for
 * a person following a run (or, with `--json`, for a program).
 *
 * With a run id: that run and its events. With anything else: the latest runs of that
 * resource (an image name, a device), each with its events. With nothing: the most recent
 * runs, one line each.
 *
 * @example
 * ```ts
 * import { runCli } from "../frame.ts";
 * await runCli(["history", "--state-dir", "/tmp/state", "--json"]); // {"runs": [...]}
 * ```
 * @module
 */
import type { Command } from "../command.ts";
import { StateDir } from "../../state_dir.ts";
import { SqliteRunStore } from "../../store/runs.ts";
import type { RunEvent, RunRecord } from "../../engine/types.ts";
import { isRunId } from "../../engine/id.ts";
import { InvalidInputError, UsageError } from "../../errors.ts";

/** One event as `history --json` prints it. */
export interface EventView {
  seq: number;
  at: string;
  kind: RunEvent["kind"];
  state: string | null;
  attempt: number | null;
  data: unknown;
}

/** One run as `history --json` prints it (`events` only when a run or resource was named). */
export interface RunView {
  id: string;
  machine: string;
  resourceId: string;
  status: RunRecord["status"];
  state: string;
  attempts: number;
  owner: string | null;
  request: unknown;
  response: unknown;
  lastError: unknown;
  createdAt: string;
  updatedAt: string;
  events?: EventView[];
}

/** The whole `history --json` document. */
export interface HistoryDoc {
  stateDir: string;
  query: { runId?: string; resourceId?: string; limit: number };
  runs: RunView[];
}

const history: Command = {
  name: "history",
  summary: "show what runs did, event by event",
  usage: "thinimage history [RUN-ID | RESOURCE] [--limit N] [--json]\n" +
    "  RUN-ID     one run and its events\n" +
    "  RESOURCE   the latest runs of a resource (an image name), with their events\n" +
    "  (nothing)  the most recent runs, one line each\n" +
    "  --limit N  how many runs (default 20; 5 for a resource)",
  options: { limit: { type: "string" } },
  positionals: [0, 1],
  // write: SQLite needs the WAL's shared-memory file even to read.
  keeps: ["read", "write", "env"],
  run(ctx, { values, positionals }) {
    const target = positionals[0];
    if (target !== undefined && target.trim() === "") {
      throw new UsageError("history: the run id or resource is empty");
    }
    const limit = parseLimit(values.limit, target === undefined ? 20 : 5);
    const dir = new StateDir(ctx.stateDir);
    const path = dir.database;
    const doc: HistoryDoc = { stateDir: ctx.stateDir, query: { limit }, runs: [] };
    if (!dir.hasDatabase()) {
      if (target !== undefined && isRunId(target)) {
        throw new InvalidInputError(
          `history: no run ${target} (nothing recorded in ${ctx.stateDir})`,
        );
      }
      ctx.result(doc, render);
      return;
    }
    const store = dir.openStore();
    try {
      const runs = new SqliteRunStore(store);
      const one = target !== undefined ? runs.get(target) : undefined;
      if (one) {
        doc.query.runId = target;
        doc.runs = [view(one, runs.events(one.id))];
      } else if (target !== undefined) {
        if (isRunId(target)) throw new InvalidInputError(`history: no run ${target} in ${path}`);
        doc.query.resourceId = target;
        doc.runs = runs.list({ resourceId: target, limit }).map((r) => view(r, runs.events(r.id)));
      } else {
        doc.runs = runs.list({ limit }).map((r) => view(r));
      }
    } finally {
      store.close();
    }
    ctx.result(doc, render);
  },
};
export default history;

function parseLimit(v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v) || n < 1 || n > 10_000) {
    throw new UsageError(`history: --limit must be a whole number from 1 to 10000, not '${v}'`);
  }
  return n;
}

/** Decode stored JSON; a corrupt record shows as its raw text instead of stopping the listing. */
function parse(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A run for `--json`. Exported for tests. */
export function view(r: RunRecord, events?: RunEvent[]): RunView {
  return {
    id: r.id,
    machine: r.machine,
    resourceId: r.resourceId,
    status: r.status,
    state: r.state,
    attempts: r.attempts,
    owner: r.owner,
    request: parse(r.request),
    response: parse(r.response),
    lastError: parse(r.lastError),
    createdAt: iso(r.createdAt),
    updatedAt: iso(r.updatedAt),
    events: events?.map((e) => ({
      seq: e.seq,
      at: iso(e.at),
      kind: e.kind,
      state: e.state,
      attempt: e.attempt,
      data: parse(e.data),
    })),
  };
}

/** The human listing (stderr). Exported for tests. */
export function render(doc: HistoryDoc): string {
  if (doc.runs.length === 0) {
    const what = doc.query.resourceId ? ` for '${doc.query.resourceId}'` : "";
    return `no runs recorded${what} in ${doc.stateDir}`;
  }
  const out: string[] = [];
  for (const r of doc.runs) {
    if (!r.events) {
      out.push(
        `${r.id}  ${r.createdAt.slice(0, 19).replace("T", " ")}  ${r.machine} ${r.resourceId}  ` +
          `${outcome(r)}`,
      );
      continue;
    }
    if (out.length) out.push("");
    const took = Date.parse(r.updatedAt) - Date.parse(r.createdAt);
    out.push(
      `run ${r.id}: ${r.machine} ${r.resourceId}, ${outcome(r)} ` +
        `(started ${r.createdAt.slice(0, 19).replace("T", " ")} UTC, ${seconds(took)})`,
    );
    for (const e of r.events) {
      out.push(`  ${e.at.slice(11, 23)}  ${e.kind.padEnd(9)} ${describe(e)}`);
    }
  }
  return out.join("\n");
}

function outcome(r: RunView): string {
  if (r.status === "done") return "done";
  if (r.status === "failed") return `failed in '${r.state}': ${errorText(r.lastError)}`;
  return r.owner
    ? `running '${r.state}' (owner ${r.owner})`
    : `interrupted in '${r.state}', resumable`;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function errorText(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) {
    const { name, message } = e as { name?: string; message: string };
    return name && name !== "Error" ? `${name}: ${message}` : message;
  }
  return e === null || e === undefined ? "(no error recorded)" : String(e);
}

function short(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 120 ? s.slice(0, 117) + "..." : s;
}

function describe(e: EventView): string {
  const d = (e.data ?? {}) as Record<string, unknown>;
  const at = e.attempt !== null ? ` (attempt ${e.attempt})` : "";
  switch (e.kind) {
    case "start":
      return `at '${e.state}', request ${short(e.data)}`;
    case "resume":
      return `'${e.state}': taken over from ${
        d.previousOwner ?? "nobody (interrupted)"
      } by ${d.owner}`;
    case "begin":
      return `'${e.state}'${at}${
        d.restarted ? ", restarted: an earlier attempt was cut short" : ""
      }`;
    case "complete":
      return `'${e.state}'${at} -> ${short(e.data)}`;
    case "error":
      return `'${e.state}'${at}: ${errorText(d)}${d.timedOut ? " [timeout]" : ""}${
        d.permanent ? " [permanent]" : " [will retry if allowed]"
      }`;
    case "retry":
      return `'${e.state}' again in ${d.delayMs} ms`;
    case "abort":
      return `halted in '${e.state}': ${errorText(d)}`;
    case "cancel":
      return `interrupted in '${e.state}' (${d.reason ?? "cancelled"}); resumable`;
    case "finalizer_error":
      return `finalizer ${d.finalizer} failed: ${errorText(d)}`;
    case "finish":
      return `${d.status ?? "finished"} at '${e.state}'`;
    default:
      return short(e.data);
  }
}
