import type { ApiClient } from '../api/client.js';
import type { StatePaths } from '../base/state-dir.js';

export interface CommandContext {
  /** The state directory selected by VOS_HOME (or the default). */
  paths(): StatePaths;
  /** Connects to the running agent; fails with `no_agent` when there is none. */
  connect(): Promise<ApiClient>;
  /** Connects, starting a background agent first when none runs. */
  connectOrStart(): Promise<ApiClient>;
  out(text: string): void;
  err(text: string): void;
}

export interface Command {
  name: string;
  /** One line for `vos --help`. */
  summary: string;
  /** The whole `vos NAME --help` text. */
  help: string;
  /** Returns the process exit status. */
  run(argv: string[], ctx: CommandContext): Promise<number>;
}
