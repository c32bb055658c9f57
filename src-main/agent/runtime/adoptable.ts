/**
 * The programs `vos adopt` could take over (`session.adoptable`): this user's processes that run
 * on a terminal, read from /proc. Left out: those on a vOS session's terminal (a pty whose
 * other end a `vos-init` of this user holds on its standard input: a pod's, a restore's, an
 * adopted session's stand-in), those in another pid namespace (a pod's processes seen from
 * here), and the agent itself. Sorted by terminal, the session leader first.
 */
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import type { AdoptableProcess } from '../../api/protocol.js';

interface Stat {
  pid: number;
  comm: string;
  sid: number;
  pgid: number;
  ttyNr: number;
  tpgid: number;
}

/** /proc/PID/stat's fields we need; null if it is gone or unreadable. */
function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const open = text.indexOf('('), close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const f = text.slice(close + 2).split(' '); // from field 3 (state) on
  return { pid, comm: text.slice(open + 1, close), pgid: Number(f[2]), sid: Number(f[3]), ttyNr: Number(f[4]), tpgid: Number(f[5]) };
}

const uidOf = (pid: number): number | null => {
  try {
    return statSync(`/proc/${pid}`).uid;
  } catch {
    return null;
  }
};

function terminalName(pid: number, nr: number): string {
  // The name from one of its descriptors on it, or the device numbers.
  for (const fd of ['0', '1', '2']) {
    try {
      const path = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (path.startsWith('/dev/') && statSync(path).rdev === nr /* both encode the device alike */) return path.slice(5);
    } catch {
      /* closed, or not ours to read */
    }
  }
  return `tty ${(nr >> 8) & 0xfff}:${(nr & 0xff) | ((nr >> 12) & 0xfff00)}`;
}

function commandLine(pid: number, comm: string): string {
  try {
    const words = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((w) => w !== '');
    return (words.length ? words.join(' ') : comm).slice(0, 200);
  } catch {
    return comm;
  }
}

export function adoptablePrograms(): AdoptableProcess[] {
  const uid = process.getuid?.() ?? -1;
  let ownNs = '';
  try {
    ownNs = readlinkSync('/proc/self/ns/pid');
  } catch {
    /* no namespaces shown: none left out for that */
  }
  const mine: Stat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid || uidOf(pid) !== uid) continue;
    const st = readStat(pid);
    if (st) mine.push(st);
  }
  // The terminals of vOS's own sessions: what a vos-init holds on its standard input.
  const vosTerminals = new Set<number>();
  for (const st of mine) {
    if (st.comm !== 'vos-init') continue;
    try {
      const s = statSync(`/proc/${st.pid}/fd/0`);
      if (s.isCharacterDevice()) vosTerminals.add(s.rdev);
    } catch {
      /* gone */
    }
  }
  const out: AdoptableProcess[] = [];
  for (const st of mine) {
    if (st.ttyNr === 0 || st.comm === 'vos-init' || vosTerminals.has(st.ttyNr)) continue;
    try {
      if (ownNs && readlinkSync(`/proc/${st.pid}/ns/pid`) !== ownNs) continue;
    } catch {
      continue;
    }
    out.push({ pid: st.pid, command: commandLine(st.pid, st.comm), terminal: terminalName(st.pid, st.ttyNr), session: st.sid, foreground: st.pgid === st.tpgid });
  }
  return out.sort((a, b) => a.terminal.localeCompare(b.terminal) || Number(b.pid === b.session) - Number(a.pid === a.session) || a.pid - b.pid);
}
