/** Processes below a process, from /proc (children of every thread of each), who a pid is, and what it has open. */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The children of `pid` (of any of its threads); [] when it is gone. */
export function childPids(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return out;
}

/** `root` and every process below it, parents before children. */
export function processTree(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...childPids(pid));
  }
  return out;
}

/**
 * The processes below `root` without its first `outer` levels: for a session (outer 2), the
 * programs, not vos-init's outer process (root) and pod init, whose sockets and files are the
 * agent's own.
 */
export function programPids(root: number, outer = 2): number[] {
  const infrastructure = new Set(outer >= 2 ? [root, ...childPids(root)] : outer === 1 ? [root] : []);
  return processTree(root).filter((pid) => !infrastructure.has(pid));
}

/**
 * Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot; with the pid,
 * it names one process even after the pid is reused. null when there is no such process.
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** What each open fd of `pid` names (`/proc/PID/fd/N`: a path, `socket:[INODE]`, `pipe:[...]`); [] when it is gone or not ours to read. */
export function openFdTargets(pid: number): string[] {
  return openFds(pid).map((f) => f.target);
}

/** The open fds of `pid` with what each names (see openFdTargets). */
export function openFds(pid: number): Array<{ fd: number; target: string }> {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const out: Array<{ fd: number; target: string }> = [];
  for (const fd of fds) {
    try {
      out.push({ fd: Number(fd), target: readlinkSync(`/proc/${pid}/fd/${fd}`) });
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

const O_APPEND = 0o2000;

/**
 * How fd `fd` of `pid` is open, from /proc/PID/fdinfo/FD: `append` with O_APPEND (every write
 * goes at the end, wherever the offset is: a shell's `>>`, a log opened for appending), `other`
 * for anything else, null when gone.
 */
export function fdOpenMode(pid: number, fd: number): 'append' | 'other' | null {
  let info: string;
  try {
    info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  } catch {
    return null;
  }
  const m = /^flags:\s*([0-7]+)$/m.exec(info);
  if (!m) return 'other';
  const flags = parseInt(m[1]!, 8);
  return (flags & O_APPEND) !== 0 ? 'append' : 'other';
}
