/**
 * A small, strict option parser for the `vos` subcommands. Unlike node:util's parseArgs it can
 * stop at the first positional (so `vos run bash -c 'x'` leaves `-c` to bash) and supports an
 * option whose value is optional (`--web [PORT]`).
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface OptionSpec {
  type: 'boolean' | 'string';
  short?: string;
  /** For string options: the value may be left out (then the option's value is ''). */
  optionalValue?: boolean;
  /** For optional values: a value is taken only when it matches. */
  valuePattern?: RegExp;
  /** For string options: may be given more than once; every value is in `lists`. */
  repeatable?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

export interface ParsedArgs {
  options: Record<string, string | boolean | undefined>;
  /** The values of each repeatable option given, in order (options has the last). */
  lists: Record<string, string[]>;
  positionals: string[];
}

export interface ParseMode {
  /** Everything from the first positional on is positional (the command of `vos run`). */
  stopAtFirstPositional?: boolean;
}

export function parseArgs(argv: string[], specs: OptionSpecs, mode: ParseMode = {}): ParsedArgs {
  const options: ParsedArgs['options'] = {};
  const lists: ParsedArgs['lists'] = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(specs).filter(([, s]) => s.short).map(([name, s]) => [s.short!, name]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      if (mode.stopAtFirstPositional) {
        positionals.push(...argv.slice(i));
        break;
      }
      positionals.push(arg);
      continue;
    }
    let name: string;
    let inlineValue: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inlineValue = eq >= 0 ? arg.slice(eq + 1) : undefined;
    } else {
      if (arg.length !== 2) throw new UsageError(`unknown option ${arg} (short options cannot be grouped)`);
      const long = byShort.get(arg.slice(1));
      if (!long) throw new UsageError(`unknown option ${arg}`);
      name = long;
    }
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown option --${name}`);
    if (spec.type === 'boolean') {
      if (inlineValue !== undefined) throw new UsageError(`--${name} takes no value`);
      options[name] = true;
      continue;
    }
    const take = (value: string): void => {
      options[name] = value;
      if (spec.repeatable) (lists[name] ??= []).push(value);
    };
    if (inlineValue !== undefined) {
      take(inlineValue);
      continue;
    }
    const next = argv[i + 1];
    const takesNext =
      next !== undefined && next !== '--' && (spec.optionalValue ? (spec.valuePattern?.test(next) ?? !next.startsWith('-')) : true);
    if (takesNext) {
      take(next);
      i += 1;
    } else if (spec.optionalValue) {
      take('');
    } else {
      throw new UsageError(`--${name} needs a value`);
    }
  }
  return { options, lists, positionals };
}

export function requireInt(value: string | undefined, what: string, min: number, max: number): number {
  if (value === undefined || !/^\d+$/.test(value)) throw new UsageError(`${what} must be a whole number`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${what} must be from ${min} to ${max}`);
  return n;
}
