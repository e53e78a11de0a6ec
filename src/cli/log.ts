/**
 * Human output and progress on stderr: plain lines for people, JSON lines for cron
 * (`--log-format json`), and a progress line only when stderr is a terminal.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * const log = new Logger({ level: "info", format: "text" });
 * log.info("fetched", { layer: "1.tar", bytes: 1024 });
 * ```
 * @module
 */
import { formatBytes } from "../log.ts";
import type * as log from "../log.ts";

/** Verbosity: `--quiet` is "warn", default "info", `--verbose` "debug". */
export type LogLevel = "debug" | "info" | "warn" | "error";
/** `text` for people, `json` for machines. */
export type LogFormat = "text" | "json";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Writes log lines to stderr (or a given sink, for tests). */
export class Logger implements log.Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  readonly #write: (line: string) => void;
  readonly #tty: boolean;
  #progressShown = false;
  #lastProgress = 0;
  /** Tasks in progress by label, in the order they started: a pull downloads and unpacks at once. */
  readonly #tasks = new Map<string, { done: number; total?: number }>();

  constructor(opts: {
    level: LogLevel;
    format: LogFormat;
    write?: (line: string) => void;
    tty?: boolean;
  }) {
    this.level = opts.level;
    this.format = opts.format;
    const enc = new TextEncoder();
    this.#write = opts.write ?? ((line) => Deno.stderr.writeSync(enc.encode(line)));
    this.#tty = opts.tty ?? (opts.write ? false : Deno.stderr.isTerminal());
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.#log("error", msg, fields);
  }

  /** A plain line of human output (a command's summary); suppressed below "info". */
  line(text: string): void {
    if (RANK[this.level] > RANK.info) return;
    this.#clearProgress();
    if (this.format === "json") this.#write(JSON.stringify({ level: "info", msg: text }) + "\n");
    else this.#write(text + "\n");
  }

  /**
   * Show progress (`label: done/total`), redrawn in place at most 10 times a second, only on
   * a terminal and only in text format. Tasks in progress at once share the line, each until
   * it reaches its total. Call {@linkcode Logger.endProgress} when done.
   */
  progress(label: string, done: number, total?: number): void {
    if (!this.#tty || this.format !== "text" || RANK[this.level] > RANK.info) return;
    const finished = total !== undefined && done >= total;
    if (finished) this.#tasks.delete(label);
    else this.#tasks.set(label, { done, total });
    const now = Date.now();
    if (now - this.#lastProgress < 100 && !finished) return;
    this.#lastProgress = now;
    const shown = [...this.#tasks].map(([l, t]) => describeTask(l, t.done, t.total));
    if (shown.length === 0) shown.push(describeTask(label, done, total));
    this.#write(`\r\x1b[2K${shown.join("  |  ")}`);
    this.#progressShown = true;
  }

  /** Clear the progress line, if one is shown. */
  endProgress(): void {
    this.#tasks.clear();
    this.#clearProgress();
  }

  #clearProgress(): void {
    if (this.#progressShown) {
      this.#write("\r\x1b[2K");
      this.#progressShown = false;
    }
  }

  #log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < RANK[this.level]) return;
    this.#clearProgress();
    if (this.format === "json") {
      this.#write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + "\n");
      return;
    }
    const extra = fields
      ? " " + Object.entries(fields).map(([k, v]) => `${k}=${fmtValue(v)}`).join(" ")
      : "";
    const prefix = level === "info" ? "" : `${level}: `;
    this.#write(`${prefix}${msg}${extra}\n`);
  }
}

function describeTask(label: string, done: number, total?: number): string {
  const pct = total ? ` ${Math.floor((done / total) * 100)}%` : "";
  return `${label}: ${formatBytes(done)}${total ? "/" + formatBytes(total) : ""}${pct}`;
}

function fmtValue(v: unknown): string {
  if (typeof v === "string") return /\s/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}
