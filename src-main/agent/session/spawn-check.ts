/**
 * Checks a session's command and working directory before the pty is forked, so that a typo gets
 * "not found" instead of a session that dies at once with an unreadable message on its screen.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { VosError } from '../../api/errors.js';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function checkWorkingDirectory(cwd: string): void {
  let isDir = false;
  try {
    isDir = statSync(cwd).isDirectory();
    accessSync(cwd, constants.X_OK);
  } catch {
    throw new VosError('spawn_failed', `working directory ${cwd} does not exist or cannot be entered`);
  }
  if (!isDir) throw new VosError('spawn_failed', `working directory ${cwd} is not a directory`);
}

/** Returns the path that exec would run for `command`, or throws `spawn_failed`. */
export function resolveCommand(command: string, cwd: string, pathVar: string | undefined): string {
  if (command.includes('/')) {
    const full = isAbsolute(command) ? command : resolve(cwd, command);
    if (!isExecutableFile(full)) throw new VosError('spawn_failed', `${command}: no such executable file`);
    return full;
  }
  for (const dir of (pathVar ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (!dir) continue;
    const full = join(isAbsolute(dir) ? dir : resolve(cwd, dir), command);
    if (isExecutableFile(full)) return full;
  }
  throw new VosError('spawn_failed', `${command}: command not found in PATH`);
}
