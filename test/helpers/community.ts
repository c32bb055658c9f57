/**
 * Agents on simulated hosts (test/helpers/netns.ts): each `vos daemon` runs inside its host's
 * network namespace, listens on the host's address and (unless told otherwise) publishes and
 * browses with mDNS. Its Unix socket is an ordinary file, so the tests' clients and the `vos`
 * command reach it from outside the namespace, as the user on that machine would.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { chownSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { PeerInfo, SessionInfo } from '../../src-main/api/protocol.js';
import { statePaths } from '../../src-main/base/state-dir.js';
import { connectToAgent } from '../../src-main/client/socket-transport.js';
import { UNPRIVILEGED, VOS, endHosts, tempHome, vos, waitFor, type CliResult } from './agent-process.js';
import { createSimNetwork, netnsUnavailable, type SimHost, type SimNetwork } from './netns.js';

export const PEER_PORT = 47470;

/**
 * For the agents of tests that pull a cable or kill an agent (env of startHostAgent): the links
 * notice a lost peer and dial it again, and a committed move asks for "go" again, within
 * seconds instead of the real tens of seconds (VOS_TEST_FAST_LINKS, see
 * src-main/agent/community/link-timing.ts). What the tests prove is the same: only how long
 * the agents wait before they give up on a silent peer changes.
 */
export const FAST_LINKS = { VOS_TEST_FAST_LINKS: '1' } as const;

export interface HostAgent {
  name: string;
  host: SimHost;
  home: string;
  /** host:port where peers reach it. */
  address: string;
  proc: ChildProcess;
  log(): string;
  connect(): Promise<ApiClient>;
  vos(args: string[]): Promise<CliResult>;
  /**
   * What `vos screen ID` prints and `vos ls --json` lists, asked through the API: a test that
   * polls them would otherwise start a Node process every 25 ms and keep a core busy with it.
   */
  screen(id: string): Promise<string>;
  sessions(): Promise<SessionInfo[]>;
  peers(): Promise<PeerInfo[]>;
  /** Waits until this agent's list has a peer matching `test`. */
  waitPeer(what: string, test: (p: PeerInfo) => boolean, timeoutMs?: number): Promise<PeerInfo>;
  /** Ends the process with `signal` and waits for it (SIGTERM: a goodbye; SIGKILL: none). */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** SIGTERM, and removes the state directory unless kept. */
  stop(options?: { keepHome?: boolean }): Promise<void>;
}

export async function startHostAgent(
  net: SimNetwork,
  host: SimHost,
  name: string,
  options: {
    home?: string;
    mdns?: boolean;
    listenAll?: boolean;
    /**
     * Shell commands run first in a private mount namespace of the agent's own (to give this
     * machine a different filesystem: a directory missing, a disk full).
     */
    mountPrelude?: string;
    /**
     * This machine's monotonic clocks are this far ahead of the host's (its sessions run in a
     * time namespace): machines that booted at different times.
     */
    clockAheadSeconds?: number;
    env?: NodeJS.ProcessEnv;
    /** Runs the agent (and the `vos` commands of `vos()`) as this user, not root: its home is given to it. */
    asUser?: typeof UNPRIVILEGED;
  } = {},
): Promise<HostAgent> {
  const home = options.home ?? tempHome();
  const user = options.asUser;
  if (user) chownTree(home, user.uid, user.gid);
  const asUser = (cmd: string[]): string[] =>
    user ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', ...cmd] : cmd;
  const address = `${host.address}:${PEER_PORT}`;
  const listen = options.listenAll ? `0.0.0.0:${PEER_PORT}` : address;
  const daemon = asUser([process.execPath, VOS, 'daemon', '--name', name, '--listen', listen]);
  const ahead = options.clockAheadSeconds ? String(options.clockAheadSeconds) : null;
  // unshare --time puts the agent's children (its sessions), not the agent itself, in the namespace.
  const clocked = ahead ? ['unshare', '--time', '--monotonic', ahead, '--boottime', ahead, ...daemon] : daemon;
  const [cmd, ...args] = options.mountPrelude
    ? ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `${options.mountPrelude} && exec "$0" "$@"`, ...clocked]
    : clocked;
  const proc = net.spawn(host, cmd!, args, {
    env: { VOS_HOME: home, VOS_MDNS: options.mdns === false ? '0' : '1', VOS_LISTEN: undefined, ...(user ? { HOME: home } : {}), ...options.env },
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const clients: ApiClient[] = [];
  /** One request on a connection of its own. */
  const once = async <T>(ask: (c: ApiClient) => Promise<T>): Promise<T> => {
    const c = await agent.connect();
    try {
      return await ask(c);
    } finally {
      c.close();
      const i = clients.indexOf(c);
      if (i >= 0) clients.splice(i, 1);
    }
  };
  const agent: HostAgent = {
    name,
    host,
    home,
    address,
    proc,
    log: () => out,
    async connect() {
      const c = await connectToAgent(statePaths(home).socket, 'test');
      clients.push(c);
      return c;
    },
    vos: (args) => (user ? vosAs(user, home, args) : vos(home, args)),
    screen: (id) => once(async (c) => (await c.request('session.screen', { id })).lines.join('\n') + '\n'),
    sessions: () => once((c) => c.request('session.list', {})),
    peers: () => once((c) => c.request('peer.list', {})),
    waitPeer: (what, test, timeoutMs = 10_000) =>
      waitFor(`${name} to see ${what}`, async () => (await agent.peers()).find(test), timeoutMs, 100),
    async kill(signal) {
      for (const c of clients.splice(0)) c.close();
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
    async stop({ keepHome = false } = {}) {
      await agent.kill('SIGTERM');
      if (!keepHome) {
        await endHosts(home);
        rmSync(home, { recursive: true, force: true });
      }
    },
  };
  try {
    await waitFor(`agent ${name} to start`, () => out.includes('running (pid') || proc.exitCode !== null, 15_000);
    if (proc.exitCode !== null) throw new Error(`vos daemon ${name} exited with ${proc.exitCode}: ${out}`);
  } catch (e) {
    await agent.stop();
    throw e;
  }
  return agent;
}

/**
 * Pairs `a` (asks) with `b` (accepts) through the `vos` command, as two users would: `a`'s user
 * asks and later confirms the code `b` shows (`vos pair confirm`), `b`'s user accepts the code
 * it shows; `order` says whose answer comes first.
 */
export async function pairAgents(a: HostAgent, b: HostAgent, order: 'accept-first' | 'confirm-first' = 'accept-first'): Promise<void> {
  await a.waitPeer(b.name, (p) => p.name === b.name && p.online);
  const asking = a.vos(['pair', b.name, '--timeout', '20']);
  const request = await b.waitPeer(`${a.name}'s pairing request`, (p) => p.name === a.name && p.pairing?.direction === 'incoming');
  const shownOnB = request.pairing!.code;
  // `vos pair accept` runs until both answered: this resolves once b took the acceptance.
  const accept = async (): Promise<{ accepting: Promise<CliResult> }> => {
    const accepting = b.vos(['pair', 'accept', a.name, '--code', shownOnB, '--timeout', '20']);
    await b.waitPeer(`${a.name}'s request accepted`, (p) => p.name === a.name && (p.paired || p.pairing?.confirmed === true));
    return { accepting };
  };
  const confirm = async (): Promise<void> => {
    const confirmed = await a.vos(['pair', 'confirm', b.name, '--code', shownOnB]);
    if (confirmed.code !== 0) throw new Error(`pair confirm failed: ${confirmed.stderr}`);
  };
  let accepting: { accepting: Promise<CliResult> };
  if (order === 'accept-first') {
    accepting = await accept();
    await confirm();
  } else {
    await confirm();
    accepting = await accept();
  }
  const accepted = await accepting.accepting;
  if (accepted.code !== 0) throw new Error(`pair accept failed: ${accepted.stderr}`);
  const asked = await asking;
  if (asked.code !== 0) throw new Error(`vos pair failed: ${asked.stderr}`);
}

/** Why the multi-host tests of `file` cannot run here (printed), or null. */
export function multiHostSkipReason(file: string): string | null {
  const why = netnsUnavailable();
  if (why) console.log(`[${file}] skipped: ${why}`);
  return why;
}

/** A file tree given to a user (a state directory made or copied by the test, which runs as root). */
function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (!statSync(path).isDirectory()) return;
  for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/** `vos ARGS` as that user (the CLI trusts a state directory of its own user only). */
function vosAs(user: typeof UNPRIVILEGED, home: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      'setpriv',
      [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, VOS, ...args],
      { env: { ...process.env, VOS_HOME: home, HOME: home }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** The files of a state directory that make an agent the same machine, paired with the same peers. */
const REMEMBERED = ['identity', 'peers.json'];

/**
 * For one describe block: the simulated network and the agents a test makes through it are
 * stopped and removed after each test, whatever happened in it.
 */
export class SimLab {
  net: SimNetwork | null = null;
  private readonly agents: HostAgent[] = [];
  /** What alpha and beta remembered after the block's first pairing (see pairedAgents). */
  private remembered: [string, string] | null = null;

  constructor() {
    afterAll(() => {
      for (const home of this.remembered ?? []) rmSync(home, { recursive: true, force: true });
    });
    afterEach(async () => {
      // Side by side: each agent has its own home and terminal hosts.
      const stopped = await Promise.allSettled(this.agents.splice(0).map((a) => a.stop()));
      await this.net?.dispose();
      this.net = null;
      const failed = stopped.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    });
  }

  network(count: number): SimNetwork {
    this.net = createSimNetwork(count);
    return this.net;
  }

  /**
   * A new network of two hosts, alpha on the first and beta on the second, paired. The block's
   * first pair pairs through `vos pair` as users would; later ones start from a copy of what
   * those two remembered (their keys and peers.json), as machines do after a restart: that
   * saves each test the seconds of a pairing (pairing.test.ts is where pairing is tested).
   */
  async pairedAgents(aOptions: Parameters<SimLab['agent']>[2] = {}, bOptions: Parameters<SimLab['agent']>[2] = {}): Promise<[HostAgent, HostAgent]> {
    this.network(2);
    if (this.remembered && !aOptions.home && !bOptions.home) {
      const [aHome, bHome] = this.remembered.map((from) => {
        const home = tempHome();
        for (const f of REMEMBERED) cpSync(join(from, f), join(home, f), { recursive: true });
        return home;
      });
      // Started side by side: neither waits for the other (each has its own host and home).
      const [a, b] = await Promise.all([this.agent(0, 'alpha', { ...aOptions, home: aHome! }), this.agent(1, 'beta', { ...bOptions, home: bHome! })]);
      const linked = (name: string) => (p: PeerInfo) => p.name === name && p.paired && p.link === 'up';
      await Promise.all([a.waitPeer('beta paired and linked', linked('beta'), 20_000), b.waitPeer('alpha paired and linked', linked('alpha'), 20_000)]);
      return [a, b];
    }
    const [a, b] = await Promise.all([this.agent(0, 'alpha', aOptions), this.agent(1, 'beta', bOptions)]);
    await pairAgents(a, b);
    if (!this.remembered && !aOptions.home && !bOptions.home) this.remembered = await remember(a, b);
    return [a, b];
  }

  /** An agent on host number `index` (0-based) of the current network. */
  async agent(index: number, name: string, options: Parameters<typeof startHostAgent>[3] = {}): Promise<HostAgent> {
    const a = await startHostAgent(this.net!, this.net!.hosts[index]!, name, options);
    this.agents.push(a);
    return a;
  }
}

/** Copies of the keys and peers.json of two paired agents, once each has written the pairing down. */
async function remember(...agents: [HostAgent, HostAgent]): Promise<[string, string]> {
  const copies: string[] = [];
  for (const agent of agents) {
    await waitFor(`${agent.name} to write the pairing down`, () => /"paired":\s*true/.test(readFileSync(join(agent.home, 'peers.json'), 'utf8')));
    const copy = mkdtempSync(`/tmp/vos-remembered-${agent.name}-`);
    for (const f of REMEMBERED) cpSync(join(agent.home, f), join(copy, f), { recursive: true });
    copies.push(copy);
  }
  return [copies[0]!, copies[1]!];
}
