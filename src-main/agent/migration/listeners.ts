/**
 * The addresses a migrating session listens on (TCP ports, Unix socket paths), found by the
 * source before anything stops, and checked by the target: the restore there listens on each
 * again (VOS_OBJ_LISTEN_SOCKET), so a port, path or abstract Unix name taken on the target refuses
 * the move up front, naming it, instead of failing once the session is frozen. A Unix path or
 * abstract name is checked in the target's /proc/net/unix (bound, listening), never by connecting
 * to it: the program there sees nothing.
 */
import { createServer, isIP } from 'node:net';
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ListenNeed } from '../../api/protocol.js';
import { openFdTargets, programPids } from '../../base/process-tree.js';

/** At most this many listeners are named in an offer (and checked by a target). */
export const MAX_LISTENERS = 256;

/** Socket inodes of a /proc/net/tcp{,6} table's listeners: inode → address and port. */
function tcpListeners(table: string, v6: boolean, into: Map<string, ListenNeed>): void {
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== '0A') continue; // TCP_LISTEN
    const [hex, portHex] = f[1]!.split(':');
    if (!hex || !portHex) continue;
    into.set(f[9]!, { kind: 'tcp', address: v6 ? ipv6FromProc(hex) : ipv4FromProc(hex), port: parseInt(portHex, 16) });
  }
}

/** /proc/net/tcp writes an IPv4 address as one host-order (little-endian here) 32-bit word. */
function ipv4FromProc(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  return [b[3], b[2], b[1], b[0]].join('.');
}

/** ... and an IPv6 address as four such words. */
function ipv6FromProc(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(16);
  for (let w = 0; w < 4; w++) for (let i = 0; i < 4; i++) out[w * 4 + i] = b[w * 4 + 3 - i]!;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(out.readUInt16BE(i).toString(16));
  // The shortest form is not needed: net and the C side read any valid one.
  return groups.join(':');
}

/** The bound Unix sockets of a /proc/net/unix table: path or abstract name ("@name", as the
 * kernel writes it) → inode and whether it listens. */
function unixBound(table: string): { inode: string; name: string; listening: boolean }[] {
  const out: { inode: string; name: string; listening: boolean }[] = [];
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const name = f.slice(7).join(' ');
    if (!name.startsWith('/') && !name.startsWith('@')) continue;
    out.push({ inode: f[6]!, name, listening: (parseInt(f[3]!, 16) & 0x10000) !== 0 }); // __SO_ACCEPTCON
  }
  return out;
}

/** Unix listeners of /proc/net/unix, bound to a path or an abstract name: inode → it. */
function unixListeners(table: string, into: Map<string, ListenNeed>): void {
  for (const b of unixBound(table)) if (b.listening) into.set(b.inode, { kind: 'unix', address: b.name, port: 0 });
}

/**
 * What the processes under `root` listen on (from the network namespace of `root`); the first
 * `outer` levels of the tree are left out (a session: vos-init's outer process and pod init).
 */
export function sessionListeners(root: number, outer = 2): ListenNeed[] {
  const byInode = new Map<string, ListenNeed>();
  const read = (name: string): string => {
    try {
      return readFileSync(`/proc/${root}/net/${name}`, 'utf8');
    } catch {
      return '';
    }
  };
  tcpListeners(read('tcp'), false, byInode);
  tcpListeners(read('tcp6'), true, byInode);
  unixListeners(read('unix'), byInode);
  const found = new Map<string, ListenNeed>();
  // vos-init's outer process (root) and pod init listen on the agent's own sockets (the pod's
  // control socket): not the program's, and not carried. The programs are below pod init.
  for (const pid of programPids(root, outer)) {
    for (const target of openFdTargets(pid)) {
      const m = /^socket:\[(\d+)\]$/.exec(target);
      const need = m ? byInode.get(m[1]!) : undefined;
      if (need && found.size < MAX_LISTENERS) found.set(`${need.kind} ${need.address} ${need.port}`, need);
    }
  }
  return [...found.values()];
}

export function describeListener(l: ListenNeed): string {
  return l.kind === 'unix' ? l.address : isIP(l.address) === 6 ? `[${l.address}]:${l.port}` : `${l.address}:${l.port}`;
}

/** A peer's listener, checked before this machine looks at anything: null when well-formed. */
export function badListener(l: ListenNeed): string | null {
  if (l.kind === 'tcp') return isIP(l.address) !== 0 && Number.isInteger(l.port) && l.port >= 1 && l.port <= 65535 ? null : `a TCP address that cannot be (${l.address}:${l.port})`;
  if (l.kind === 'unix') {
    if (l.address.startsWith('@')) return l.address.length <= 108 && !l.address.includes('\0') ? null : 'an abstract Unix socket name that cannot be';
    return l.address.startsWith('/') && l.address.length < 108 && !l.address.includes('\0') && !l.address.split('/').includes('..')
      ? null
      : 'a Unix socket path that cannot be';
  }
  return 'a listener of an unknown kind';
}

/** The Unix sockets bound on this machine now (its /proc/net/unix: read, nothing connected to). */
function unixBoundHere(): { name: string; listening: boolean }[] {
  try {
    return unixBound(readFileSync('/proc/self/net/unix', 'utf8'));
  } catch {
    return [];
  }
}

/** Whether this machine could listen on a TCP address and port now (it tries, and lets go). */
function tcpFree(address: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code === 'EADDRINUSE' ? 'is in use here' : err.code === 'EADDRNOTAVAIL' ? 'is not an address of this machine' : `cannot be listened on here (${err.code ?? err.message})`);
    });
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/**
 * Why the directory of a socket path here cannot take the session's listener, or null: missing
 * is fine (the restorer makes it, 0700, when its parent is there), another user's is not (they
 * could replace the socket under the program). Checked here, with this user's real ids: the
 * restorer of an unprivileged pod sees owners through its user namespace, where root and other
 * users all look alike.
 */
function socketDirectoryProblem(dir: string): string | null {
  let st;
  try {
    st = statSync(dir);
  } catch {
    try {
      if (statSync(dirname(dir)).isDirectory()) return null;
    } catch {
      /* said below */
    }
    return `whose directory ${dir} is missing here, and so is its parent`;
  }
  if (!st.isDirectory()) return `whose directory ${dir} is not a directory here`;
  const me = process.geteuid?.() ?? -1;
  if (st.uid !== me && st.uid !== 0) return `whose directory ${dir} belongs to another user here`;
  return null;
}

/** What keeps this machine from listening where the session listens (empty: nothing). */
export async function listenersTakenHere(listeners: ListenNeed[]): Promise<string[]> {
  const problems: string[] = [];
  let here: { name: string; listening: boolean }[] | undefined;
  for (const l of listeners.slice(0, MAX_LISTENERS)) {
    const where = describeListener(l);
    if (l.kind === 'tcp') {
      const why = await tcpFree(l.address, l.port);
      if (why) problems.push(`the session listens on ${where}, which ${why}`);
      continue;
    }
    const bound = (here ??= unixBoundHere()).filter((b) => b.name === l.address);
    if (l.address.startsWith('@')) {
      // An abstract name has no file: bound at all (listening or not), it cannot be bound again.
      if (bound.length > 0) problems.push(`the session listens on the abstract Unix socket name ${where}, which another program holds here`);
      continue;
    }
    const dirProblem = socketDirectoryProblem(dirname(l.address));
    if (dirProblem) {
      problems.push(`the session listens on ${where}, ${dirProblem}`);
      continue;
    }
    let st;
    try {
      st = lstatSync(l.address);
    } catch {
      continue; /* nothing there: free */
    }
    if (!st.isSocket()) problems.push(`the session listens on ${where}, where a file that is not a socket is here`);
    else if (bound.some((b) => b.listening)) problems.push(`the session listens on ${where}, where another program listens here`);
    // A socket file no one listens on is left over: the restore replaces it.
  }
  return problems;
}
