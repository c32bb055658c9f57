/** Processes below a process, from /proc (children of every thread of each). */
import { readdirSync, readFileSync } from 'node:fs';

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
