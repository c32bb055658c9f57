/**
 * Simulated hosts for tests: one Linux network namespace per host, all joined by a bridge that lives
 * in a namespace of its own, so that agents talk over real veth links and real multicast (mDNS).
 * Recipe and measurements: /work/shared/STACK.md, "mDNS between simulated hosts".
 *
 *   bridge namespace `vos<pid>n<k>br`:  br0 (mcast_snooping 0)  <- ports bh1 .. bhN
 *   host namespace   `vos<pid>n<k>h<i>`: lo, vh<i> = 10.231.0.<i>/24, route 224.0.0.0/4 dev vh<i>
 *
 * Every veth is created directly inside its namespaces (`ip link add vhI netns H type veth peer name
 * bhI netns BR`), so nothing ever appears in the machine's own namespace and interface names only need
 * to be unique inside a namespace. Deleting a namespace deletes its interfaces with it.
 *
 * What was checked on this machine (Debian 12, kernel 6.18, iproute2 6.1):
 * - `ip netns exec NS cmd` execs `cmd` in place (no fork), so the ChildProcess pid is the program's pid
 *   and `child.kill()` signals the program itself (test/community/netns.test.ts checks it each run).
 * - IPv4 is usable as soon as both veth ends are up: the host interface reports LOWER_UP and operstate
 *   UP within ~10 ms and the bridge port (STP off) is "forwarding" at once. Creation polls exactly
 *   these three conditions; no fixed sleeps.
 * - IPv6 link-local addresses stay "tentative" (DAD) for ~1.4 s. By default IPv6 is disabled on the
 *   simulated links (lo keeps ::1), so there is nothing to wait for and no IPv6 chatter; with
 *   `{ ipv6: true }` creation also waits until no address is tentative.
 * - cut() pulls the cable at the switch: the bridge port goes down, the host's interface stays
 *   administratively up but loses carrier (NO-CARRIER, routes flagged "linkdown", addresses kept).
 *   Carrier loss flushes the host's ARP cache, so connecting out fails with EHOSTUNREACH after ~3 s
 *   (3 ARP probes, 1 s apart); multicast sends "succeed" and are dropped. restore() brings the port
 *   back and returns once the link is usable (~10 ms), but an ARP resolution begun during the cut runs
 *   its course: a connection queued behind it can still fail with EHOSTUNREACH up to ~3 s after that
 *   resolution started (measured: first try after restore failed at ~1 s, the next one worked). Poll.
 * - blockMulticast() deletes the host's 224.0.0.0/4 route and stops the bridge flooding multicast to
 *   the host's port. Sockets that do not pin an interface then fail: send -> ENETUNREACH, addMembership
 *   -> ENODEV (this is bonjour-service's default); the host receives no multicast at all, even on a
 *   socket that joined before the block. A socket that pins its interface (setMulticastInterface /
 *   `new Bonjour({ interface })`) still SENDS: for 224.0.0.x with IP_MULTICAST_IF the kernel skips the
 *   routing table, and this kernel has neither tc actions nor netfilter tools to drop it otherwise.
 *
 * Cleanup: dispose() SIGKILLs spawned processes and anything else still inside the namespaces (found
 * with `ip netns pids`, e.g. grandchildren), waits until they are gone, then deletes the namespaces.
 * A failure halfway through createSimNetwork() deletes what it made before throwing. As a last resort,
 * live networks are destroyed synchronously on 'exit' and on SIGTERM/SIGINT/SIGHUP (vitest stops its
 * workers with SIGTERM, which skips 'exit'); after a SIGKILL, the next createSimNetwork() in any test
 * process deletes namespaces of this naming whose pid is dead, with the processes left in them.
 */
import { spawn as spawnProcess, execFileSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface SimHost {
  /** "host1" .. "hostN". */
  name: string;
  /** The host's network namespace. */
  ns: string;
  /** 10.231.0.N (IPv4, /24 on the simulated LAN). */
  address: string;
  /** The host's interface inside its namespace, e.g. "vh1". */
  iface: string;
}

export interface SimNetworkOptions {
  /** Keep IPv6 on the simulated links (and wait for DAD to finish). Default false: IPv4 only. */
  ipv6?: boolean;
  /** How long creation may wait for the links to become usable. Default 10 s. */
  readyTimeoutMs?: number;
}

export interface SimSpawnOptions {
  /** Added to (not replacing) process.env; a variable set to undefined is removed. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Default ['ignore', 'pipe', 'pipe']: read the pipes or a chatty child will block. */
  stdio?: StdioOptions;
}

export interface SimNetwork {
  hosts: SimHost[];
  /** The namespace holding the bridge br0 and the host-facing ports bh1..bhN. */
  bridgeNs: string;
  /** Milliseconds createSimNetwork took, including waiting for the links. */
  setupMs: number;
  /** Runs a command inside the host's namespace (ip netns exec), returns stdout; throws with stderr on failure. */
  exec(host: SimHost, cmd: string, args: string[], options?: { timeoutMs?: number; input?: string }): string;
  /** Spawns a long-running process inside the host's namespace; it is killed (SIGKILL) by dispose() if still running. */
  spawn(host: SimHost, cmd: string, args: string[], options?: SimSpawnOptions): ChildProcess;
  /** Takes the host's link down (a cable pulled) / up again. */
  cut(host: SimHost): void;
  restore(host: SimHost): void;
  /** Removes the host's multicast route: mDNS stops working there, unicast still works. */
  blockMulticast(host: SimHost): void;
  /** Undoes blockMulticast(). */
  allowMulticast(host: SimHost): void;
  /** Kills spawned processes, deletes every namespace it made. Idempotent. */
  dispose(): Promise<void>;
}

const SUBNET = '10.231.0';
const NAME_RE = /^vos(\d+)n(\d+)(h\d+|br|probe)$/;

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

/** One registry per process, even if this module is loaded more than once (vitest module isolation). */
interface Live {
  namespaces: string[];
  children: Set<ChildProcess>;
}
interface Registry {
  counter: number;
  live: Set<Live>;
  hooked: boolean;
  unavailable?: string | null;
}
const REGISTRY_KEY = Symbol.for('vos.test.netns.registry');
const registry: Registry = ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] as Registry | undefined) ??
  ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] = { counter: 0, live: new Set(), hooked: false } as Registry);

function errText(err: unknown): string {
  const e = err as { stderr?: Buffer | string; message?: string };
  const stderr = e.stderr ? String(e.stderr).trim() : '';
  return stderr || e.message || String(err);
}

/** `ip ARGS...`, synchronously; returns stdout or throws an Error carrying ip's stderr. */
function ip(args: string[], timeoutMs = 10_000): string {
  try {
    return execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
  } catch (err) {
    throw new Error(`ip ${args.join(' ')}: ${errText(err)}`);
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls `probe` (synchronously, every few ms) until it returns true; throws with the last state. */
function pollSync(what: string, probe: () => true | string, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    let state: true | string;
    try {
      state = probe();
    } catch (err) {
      state = errText(err);
    }
    if (state === true) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${state})`);
    sleepSync(delay);
    delay = Math.min(delay * 2, 50);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespaces(): string[] {
  // "name" or "name (id: 3)" per line.
  return ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

function pidsIn(ns: string): number[] {
  try {
    return ip(['netns', 'pids', ns])
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((p) => p > 0 && p !== process.pid);
  } catch {
    return [];
  }
}

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function deleteNamespace(ns: string): void {
  try {
    ip(['netns', 'del', ns]);
  } catch (err) {
    if (!/No such file|does not exist|not found/i.test(String(err))) throw err;
  }
}

/** Synchronous cleanup: used when setup fails halfway and as the last resort at process exit. */
function destroySync(live: Live): void {
  for (const child of live.children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  // Host namespaces first (their processes, then the namespace, which takes the veth pair with it).
  for (const ns of [...live.namespaces].reverse()) {
    killPids(pidsIn(ns));
    try {
      deleteNamespace(ns);
    } catch {
      /* best effort */
    }
  }
  live.namespaces.length = 0;
  registry.live.delete(live);
}

function cleanupAllSync(): void {
  for (const live of [...registry.live]) destroySync(live);
}

function installLastResortCleanup(): void {
  if (registry.hooked) return;
  registry.hooked = true;
  process.on('exit', cleanupAllSync);
  // vitest stops its fork workers with SIGTERM, which skips 'exit' handlers: clean up, then die of the
  // signal as we would have without this handler (unless someone else also handles it).
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupAllSync();
      process.off(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Namespaces left by test processes that died before cleaning up (SIGKILL): same naming, dead pid. */
function sweepStale(): void {
  let names: string[];
  try {
    names = listNamespaces();
  } catch {
    return;
  }
  const ours = new Set([...registry.live].flatMap((l) => l.namespaces));
  for (const ns of names) {
    const m = NAME_RE.exec(ns);
    if (!m || ours.has(ns)) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && isAlive(pid)) continue;
    killPids(pidsIn(ns));
    try {
      deleteNamespace(ns);
    } catch {
      /* leave it; creation uses fresh names anyway */
    }
  }
}

/** null when this machine can host simulated networks, else the reason (not root, no `ip`, netns refused). */
export function netnsUnavailable(): string | null {
  if (registry.unavailable !== undefined) return registry.unavailable;
  const reason = ((): string | null => {
    if (process.env.VOS_TEST_NO_NETNS) return 'disabled by VOS_TEST_NO_NETNS';
    if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
    const uid = process.getuid?.() ?? -1;
    if (uid !== 0) return `network namespaces need root (running as uid ${uid})`;
    try {
      execFileSync(IP, ['-V'], { stdio: 'ignore' });
    } catch (err) {
      return `\`ip\` (iproute2) is not usable: ${errText(err)}`;
    }
    // Try the whole recipe once: a namespace, a bridge and a veth pair inside it.
    const probe = `vos${process.pid}n${registry.counter++}probe`;
    const live: Live = { namespaces: [], children: new Set() };
    registry.live.add(live);
    try {
      ip(['netns', 'add', probe]);
      live.namespaces.push(probe);
      ip(['-n', probe, 'link', 'add', 'pbr0', 'type', 'bridge']);
      ip(['link', 'add', 'pv0', 'netns', probe, 'type', 'veth', 'peer', 'name', 'pv1', 'netns', probe]);
      ip(['-n', probe, 'link', 'set', 'pv1', 'master', 'pbr0']);
      return null;
    } catch (err) {
      return `\`ip netns\` does not work here: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      destroySync(live);
    }
  })();
  registry.unavailable = reason;
  return reason;
}

interface LinkJson {
  ifname: string;
  flags?: string[];
  operstate?: string;
  addr_info?: Array<{ family: string; local: string; tentative?: boolean; dadfailed?: boolean }>;
  linkinfo?: { info_slave_kind?: string; info_slave_data?: { state?: string } };
}

function linkJson(ns: string, args: string[]): LinkJson[] {
  return JSON.parse(ip(['-n', ns, '-j', ...args])) as LinkJson[];
}

/** Makes `count` hosts (2..8) on one bridge. Names are unique per process and call. */
export function createSimNetwork(count: number, options: SimNetworkOptions = {}): SimNetwork {
  if (!Number.isInteger(count) || count < 2 || count > 8) throw new Error(`createSimNetwork: count must be 2..8, got ${count}`);
  const unavailable = netnsUnavailable();
  if (unavailable) throw new Error(`createSimNetwork: ${unavailable}`);
  const started = Date.now();
  const ipv6 = options.ipv6 ?? false;
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;

  installLastResortCleanup();
  sweepStale();

  const prefix = `vos${process.pid}n${registry.counter++}`;
  const bridgeNs = `${prefix}br`;
  const hosts: SimHost[] = Array.from({ length: count }, (_, k) => ({
    name: `host${k + 1}`,
    ns: `${prefix}h${k + 1}`,
    address: `${SUBNET}.${k + 1}`,
    iface: `vh${k + 1}`,
  }));
  const port = (h: SimHost): string => `bh${hosts.indexOf(h) + 1}`;
  const live: Live = { namespaces: [], children: new Set() };
  registry.live.add(live);

  const addNamespace = (ns: string): void => {
    ip(['netns', 'add', ns]);
    live.namespaces.push(ns);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    // Interfaces created from now on (not lo, which keeps ::1) get no IPv6. Without sysctl(8), fall
    // back to not generating link-local addresses (IPv6 stays on, but has no address to do DAD on).
    if (!ipv6) {
      try {
        nsExec(ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
      } catch {
        noSysctl = true;
      }
    }
  };
  let noSysctl = false;

  const linkUsable = (h: SimHost): true | string => {
    const [l] = linkJson(h.ns, ['addr', 'show', 'dev', h.iface]);
    if (!l) return `${h.iface} missing`;
    if (!l.flags?.includes('LOWER_UP')) return `${h.name}: no carrier`;
    if (l.operstate !== 'UP') return `${h.name}: operstate ${l.operstate}`;
    if (!l.addr_info?.some((a) => a.family === 'inet' && a.local === h.address)) return `${h.name}: no ${h.address}`;
    if (ipv6) {
      if (!l.addr_info.some((a) => a.family === 'inet6')) return `${h.name}: no IPv6 link-local yet`;
      const bad = l.addr_info.find((a) => a.tentative || a.dadfailed);
      if (bad) return `${h.name}: ${bad.local} ${bad.dadfailed ? 'failed DAD' : 'tentative'}`;
    }
    return true;
  };
  const portsForwarding = (which: SimHost[]): true | string => {
    const links = linkJson(bridgeNs, ['-d', 'link', 'show']);
    for (const h of which) {
      const p = links.find((l) => l.ifname === port(h));
      const state = p?.linkinfo?.info_slave_data?.state;
      if (state !== 'forwarding') return `bridge port ${port(h)} is ${state ?? 'missing'}`;
    }
    return true;
  };
  const waitUsable = (which: SimHost[]): void =>
    pollSync(
      `links of ${which.map((h) => h.name).join(', ')} to come up`,
      () => {
        for (const h of which) {
          const s = linkUsable(h);
          if (s !== true) return s;
        }
        return portsForwarding(which);
      },
      readyTimeoutMs,
    );

  try {
    addNamespace(bridgeNs);
    ip(['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    ip(['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
    for (const h of hosts) {
      addNamespace(h.ns);
      ip(['link', 'add', h.iface, 'netns', h.ns, 'type', 'veth', 'peer', 'name', port(h), 'netns', bridgeNs]);
      if (noSysctl) {
        ip(['-n', h.ns, 'link', 'set', h.iface, 'addrgenmode', 'none']);
        ip(['-n', bridgeNs, 'link', 'set', port(h), 'addrgenmode', 'none']);
      }
      ip(['-n', bridgeNs, 'link', 'set', port(h), 'master', 'br0']);
      ip(['-n', bridgeNs, 'link', 'set', port(h), 'up']);
      ip(['-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', h.iface]);
      ip(['-n', h.ns, 'link', 'set', h.iface, 'up']);
      ip(['-n', h.ns, 'route', 'add', '224.0.0.0/4', 'dev', h.iface]);
    }
    waitUsable(hosts);
  } catch (err) {
    destroySync(live);
    throw err;
  }

  let disposed: Promise<void> | null = null;
  const check = (h: SimHost): void => {
    if (disposed) throw new Error('SimNetwork used after dispose()');
    if (!hosts.includes(h)) throw new Error(`${h.name} (${h.ns}) is not a host of this network`);
  };

  const net: SimNetwork = {
    hosts,
    bridgeNs,
    setupMs: Date.now() - started,
    exec(host, cmd, args, opts = {}) {
      check(host);
      return nsExec(host.ns, cmd, args, opts);
    },
    spawn(host, cmd, args, opts = {}) {
      check(host);
      const env = opts.env ? { ...process.env, ...opts.env } : process.env;
      const child = spawnProcess(IP, ['netns', 'exec', host.ns, cmd, ...args], {
        env,
        cwd: opts.cwd,
        stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
      });
      live.children.add(child);
      child.once('exit', () => live.children.delete(child));
      return child;
    },
    cut(host) {
      check(host);
      ip(['-n', bridgeNs, 'link', 'set', port(host), 'down']);
      pollSync(
        `${host.name} to lose carrier`,
        () => (linkJson(host.ns, ['link', 'show', 'dev', host.iface])[0]?.flags?.includes('LOWER_UP') ? 'still LOWER_UP' : true),
        readyTimeoutMs,
      );
    },
    restore(host) {
      check(host);
      ip(['-n', bridgeNs, 'link', 'set', port(host), 'up']);
      waitUsable([host]);
    },
    blockMulticast(host) {
      check(host);
      try {
        ip(['-n', host.ns, 'route', 'del', '224.0.0.0/4', 'dev', host.iface]);
      } catch (err) {
        if (!/No such process|not found/i.test(String(err))) throw err; // already blocked
      }
      ip(['-n', bridgeNs, 'link', 'set', port(host), 'type', 'bridge_slave', 'mcast_flood', 'off']);
    },
    allowMulticast(host) {
      check(host);
      ip(['-n', host.ns, 'route', 'replace', '224.0.0.0/4', 'dev', host.iface]);
      ip(['-n', bridgeNs, 'link', 'set', port(host), 'type', 'bridge_slave', 'mcast_flood', 'on']);
    },
    dispose() {
      disposed ??= disposeLive(live);
      return disposed;
    },
  };
  return net;
}

function nsExec(ns: string, cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
  try {
    return execFileSync(IP, ['netns', 'exec', ns, cmd, ...args], {
      encoding: 'utf8',
      input: opts.input,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 30_000,
    });
  } catch (err) {
    const e = err as { status?: number | null; signal?: string | null };
    const how = e.signal ? `killed by ${e.signal}` : `exit ${e.status ?? '?'}`;
    throw new Error(`ip netns exec ${ns} ${[cmd, ...args].join(' ')} failed (${how}): ${errText(err)}`);
  }
}

async function disposeLive(live: Live): Promise<void> {
  const errors: string[] = [];
  const exits = [...live.children].map((child) => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    return exited;
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(exits), new Promise((r) => (timer = setTimeout(r, 5_000)))]);
  clearTimeout(timer);
  for (const ns of [...live.namespaces].reverse()) {
    // Whatever else runs there (grandchildren of spawned processes): kill it and wait until it is gone.
    const deadline = Date.now() + 5_000;
    for (let pids = pidsIn(ns); pids.length > 0; pids = pidsIn(ns)) {
      if (Date.now() > deadline) {
        errors.push(`${ns}: processes ${pids.join(' ')} survived SIGKILL`);
        break;
      }
      killPids(pids);
      await new Promise((r) => setTimeout(r, 10));
    }
    try {
      deleteNamespace(ns);
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  live.namespaces.length = 0;
  registry.live.delete(live);
  if (errors.length > 0) throw new Error(`SimNetwork.dispose: ${errors.join('; ')}`);
}
