/**
 * One agent per state directory. The lock file holds the owner's pid and the kernel's start time
 * of that process, so a lock left behind by a crash (or a reboot that reused the pid) is
 * recognised as stale and taken over.
 */
import { openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { VosError } from '../api/errors.js';
import { processStartTime } from '../base/process-tree.js';

interface LockOwner {
  pid: number;
  start: string;
}

function readOwner(path: string): LockOwner | null {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (typeof owner.pid === 'number' && typeof owner.start === 'string') return { pid: owner.pid, start: owner.start };
  } catch {
    /* unreadable or half-written: treat as stale */
  }
  return null;
}

function isAlive(owner: LockOwner): boolean {
  return processStartTime(owner.pid) === owner.start;
}

export interface AgentLock {
  release(): void;
}

export function acquireAgentLock(path: string, home: string): AgentLock {
  const me: LockOwner = { pid: process.pid, start: processStartTime(process.pid) ?? '?' };
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = readOwner(path);
      if (owner && isAlive(owner)) {
        throw new VosError(
          'agent_running',
          `an agent (pid ${owner.pid}) is already running for ${home}; use it, stop it, or set VOS_HOME to run another`,
        );
      }
      try {
        unlinkSync(path);
      } catch {
        /* someone else took it over first; the next attempt tells */
      }
      continue;
    }
    writeSync(fd, JSON.stringify(me));
    closeSync(fd);
    return {
      release() {
        const owner = readOwner(path);
        if (owner && owner.pid === me.pid && owner.start === me.start) {
          try {
            unlinkSync(path);
          } catch {
            /* already gone */
          }
        }
      },
    };
  }
  throw new VosError('agent_running', `could not take the agent lock ${path}: another agent is starting`);
}
