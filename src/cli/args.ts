/**
 * The command line's parser: the part of `node:util`'s `parseArgs` this CLI uses (strict, with
 * positionals; string and boolean options, short aliases, `--opt=value`, `--`), with its error
 * messages. Not `node:util` itself: importing any of Deno's Node modules but `node:sqlite`
 * loads its Node compatibility layer, which on the host costs more CPU than all of a warm
 * activation's own modules (README, "warm activate").
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 * const { values, positionals } = parseArgs({
 *   args: ["golang", "--name", "web", "-q"],
 *   options: { name: { type: "string" }, quiet: { type: "boolean", short: "q" } },
 * });
 * // values: { name: "web", quiet: true }; positionals: ["golang"]
 * ```
 * @module
 */

/** One option: its type and an optional one-letter alias. */
export interface OptionConfig {
  type: "string" | "boolean";
  short?: string;
}

/** Options by long name. */
export type OptionsConfig = Record<string, OptionConfig>;

/** What {@linkcode parseArgs} returns. */
export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** A command line {@linkcode parseArgs} refuses; the message reads as `node:util`'s. */
export class ArgsError extends TypeError {}

/**
 * Parse `args` against `options`, strictly: an unknown option, a string option without its
 * value (or whose value looks like an option: `--pool=-x` says that one is meant), or a boolean
 * given a value is an {@linkcode ArgsError}. Everything after `--` is positional. A later
 * option overrides an earlier one.
 */
export function parseArgs(
  { args, options }: { args: readonly string[]; options: OptionsConfig },
): ParsedArgs {
  const values: ParsedArgs["values"] = {};
  const positionals: string[] = [];
  const shorts = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short) shorts.set(o.short, name);
  const describe = (name: string) => {
    const short = options[name].short;
    return `${short ? `-${short}, ` : ""}--${name}`;
  };
  const unknown = (token: string) =>
    new ArgsError(
      `Unknown option '${token}'. To specify a positional argument starting with a '-', ` +
        // sic: node's text has no closing quote.
        `place it at the end of the command after '--', as in '-- ${JSON.stringify(token)}`,
    );
  /** The value of string option `name` from the next token, which it consumes. */
  const valueFrom = (name: string, token: string, i: number): string => {
    const next = args[i + 1];
    if (next === undefined) {
      throw new ArgsError(`Option '${describe(name)} <value>' argument missing`);
    }
    if (next.length > 1 && next.startsWith("-")) {
      throw new ArgsError(
        `Option '${token}' argument is ambiguous.\nDid you forget to specify the option ` +
          `argument for '${token}'?\nTo specify an option argument starting with a dash use ` +
          `'${token.startsWith("--") ? `${token}=-XYZ` : `--${name}=-XYZ' or '${token}-XYZ`}'.`,
      );
    }
    return next;
  };
  for (let i = 0; i < args.length; i++) {
    const token = args[i];
    if (token === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (token.startsWith("--")) {
      const found = token.indexOf("=");
      const eq = found === 2 ? -1 : found; // "--=x" names no option: unknown as it is
      const name = eq === -1 ? token.slice(2) : token.slice(2, eq);
      const o = Object.hasOwn(options, name) ? options[name] : undefined;
      if (!o) throw unknown(eq === -1 ? token : token.slice(0, eq));
      if (o.type === "boolean") {
        if (eq !== -1) throw new ArgsError(`Option '${describe(name)}' does not take an argument`);
        values[name] = true;
      } else if (eq !== -1) {
        values[name] = token.slice(eq + 1);
      } else {
        values[name] = valueFrom(name, token, i);
        i++;
      }
      continue;
    }
    if (token.length > 1 && token.startsWith("-")) {
      // -q, -qv (booleans together), -n VALUE or -nVALUE.
      for (let j = 1; j < token.length; j++) {
        const name = shorts.get(token[j]);
        if (name === undefined) throw unknown(`-${token[j]}`);
        if (options[name].type === "boolean") {
          values[name] = true;
          continue;
        }
        if (j + 1 < token.length) {
          values[name] = token.slice(j + 1);
        } else {
          values[name] = valueFrom(name, `-${token[j]}`, i);
          i++;
        }
        break;
      }
      continue;
    }
    positionals.push(token);
  }
  return { values, positionals };
}
