/**
 * `vos doctor`'s checks: what works on this machine, each with the fix when it does not. The
 * namespaces and dirty-page tracking are tried by the runtime (`vos-init probe`, as the agent does
 * at start); mDNS by joining its group and hearing our own query; the peer port by listening on it
 * (or asking the running agent where it listens); the state directory by its owner and mode.
 */
import { createSocket } from 'node:dgram';
import { existsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import type { ApiClient } from '../api/client.js';
import { DEFAULT_PEER_PORT } from '../agent/community/addresses.js';
import { probeHost } from '../agent/runtime/host-probe.js';
import { runtimeFiles } from '../agent/runtime/native.js';
import { statePaths } from '../base/state-dir.js';

export interface DoctorCheck {
  /** What is checked, for people. */
  name: string;
  ok: boolean;
  /** vOS cannot do its job without it (doctor exits 1 when one is missing). */
  essential: boolean;
  /** What was found (ok) or why it is missing. */
  detail: string;
  /** What to do (null when ok). */
  fix: string | null;
}

const MDNS_GROUP = '224.0.0.251';
const MDNS_PORT = 5353;

/** Every check, in the order printed. `agent`: a connection to the running agent, if there is one. */
export async function runDoctorChecks(home: string, agent: ApiClient | null): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const runtime = runtimeFiles();
  checks.push(
    runtime
      ? { name: 'the vOS runtime', ok: true, essential: true, detail: runtime.init, fix: null }
      : { name: 'the vOS runtime', ok: false, essential: true, detail: 'vos-init and libvos.so are not built', fix: 'npm run build (needs gcc and make)' },
  );
  if (runtime) {
    const probe = await probeHost(runtime.init);
    checks.push({
      name: 'namespaces (user, pid, mount, IPC)',
      ok: probe.pods.ok,
      essential: true,
      detail: probe.pods.ok ? 'sessions run in pods: they can be checkpointed and moved' : `${probe.pods.reason}: sessions run without a pod and cannot be checkpointed or moved`,
      fix: probe.pods.fix,
    });
    checks.push({
      name: 'time namespaces',
      ok: probe.timeNamespaces.ok,
      essential: false,
      detail: probe.timeNamespaces.ok ? "a restored program's clocks go on where they were" : probe.timeNamespaces.reason!,
      fix: probe.timeNamespaces.fix,
    });
    checks.push({
      name: 'userfaultfd write-protection and PAGEMAP_SCAN',
      ok: probe.dirtyTracking.ok,
      essential: false,
      detail: probe.dirtyTracking.ok ? 'live moves and incremental checkpoints' : probe.dirtyTracking.reason!,
      fix: probe.dirtyTracking.fix,
    });
  }
  checks.push(await mdnsCheck());
  checks.push(await peerPortCheck(agent));
  checks.push(stateDirCheck(home));
  return checks;
}

/** Joins the mDNS group and hears its own query come back (multicast works on some interface). */
export function mdnsCheck(): Promise<DoctorCheck> {
  const name = `mDNS (UDP ${MDNS_PORT}, group ${MDNS_GROUP})`;
  const missing = (why: string, fix: string): DoctorCheck => ({ name, ok: false, essential: false, detail: `${why}: machines on this network are not found by themselves`, fix });
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
  // A query for vOS's own service type, marked by a random id to know our own packet.
  const id = Math.floor(Math.random() * 0xffff);
  const query = Buffer.from([id >> 8, id & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, ...Buffer.from('_vos'), 4, ...Buffer.from('_tcp'), 5, ...Buffer.from('local'), 0, 0, 12, 0, 1]);
  return new Promise<DoctorCheck>((resolve) => {
    let done = false;
    const finish = (c: DoctorCheck): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve(c);
    };
    const timer = setTimeout(
      () => finish(missing('our own query did not come back within 2 s', 'check that a network interface with multicast is up, and that the firewall lets UDP 5353 in and out (sudo ufw allow 5353/udp)')),
      2000,
    );
    socket.on('error', (err) =>
      finish(
        missing(
          `cannot use UDP port ${MDNS_PORT}: ${err.message}`,
          'another program may hold the port without sharing it (sudo ss -ulpn sport = :5353); add machines by address instead (vos peer add HOST:PORT)',
        ),
      ),
    );
    socket.on('message', (msg) => {
      if (msg.length >= 2 && msg.readUInt16BE(0) === id) finish({ name, ok: true, essential: false, detail: 'joined the group and heard our own query', fix: null });
    });
    socket.bind(MDNS_PORT, () => {
      try {
        socket.setMulticastLoopback(true);
        socket.addMembership(MDNS_GROUP);
      } catch (err) {
        finish(missing(`cannot join the mDNS group: ${(err as Error).message}`, 'bring up a network interface with multicast (ip link; a default route), or add machines by address (vos peer add HOST:PORT)'));
        return;
      }
      socket.send(query, MDNS_PORT, MDNS_GROUP, (err) => {
        if (err) finish(missing(`cannot send to the mDNS group: ${err.message}`, 'bring up a network interface with a route for multicast (224.0.0.0/4), or add machines by address (vos peer add HOST:PORT)'));
      });
    });
  });
}

/** Where the running agent listens for peers, or whether the default port is free for one. */
export async function peerPortCheck(agent: ApiClient | null, port = DEFAULT_PEER_PORT): Promise<DoctorCheck> {
  const name = `the peer port (TCP ${port})`;
  const firewall = `other machines must reach it: open it in the firewall (sudo ufw allow ${port}/tcp)`;
  if (agent) {
    const info = await agent.request('agent.info', {});
    return info.listen
      ? { name, ok: true, essential: false, detail: `the running agent listens for peers on ${info.listen}; ${firewall}`, fix: null }
      : { name, ok: false, essential: false, detail: 'the running agent does not listen for peers', fix: 'start it with vos daemon --listen 0.0.0.0:47470 (or VOS_LISTEN)' };
  }
  return new Promise<DoctorCheck>((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve({
        name,
        ok: false,
        essential: false,
        detail: `cannot listen on it: ${err.code === 'EADDRINUSE' ? 'another program (or another user\'s agent) has it' : err.message}; the agent takes any free port instead, which peers find by mDNS only`,
        fix: 'free the port, or choose one for the agent: vos daemon --listen 0.0.0.0:PORT (or VOS_LISTEN) and tell peers (vos peer add HOST:PORT)',
      });
    });
    server.listen({ host: '0.0.0.0', port, exclusive: true }, () => {
      server.close(() => resolve({ name, ok: true, essential: false, detail: `free for the agent; ${firewall}`, fix: null }));
    });
  });
}

/** The state directory: ours and private, or not there yet with a parent we can write. */
export function stateDirCheck(home: string): DoctorCheck {
  const name = 'the state directory';
  try {
    statePaths(home); // its socket's path must fit
  } catch (err) {
    return { name, ok: false, essential: true, detail: (err as Error).message, fix: 'set VOS_HOME to a shorter path' };
  }
  if (!existsSync(home)) {
    let parent = dirname(home);
    while (!existsSync(parent)) parent = dirname(parent);
    return { name, ok: true, essential: true, detail: `${home} is made (0700) by the first agent (under ${parent})`, fix: null };
  }
  const st = statSync(home);
  const uid = process.getuid?.();
  if (!st.isDirectory()) return { name, ok: false, essential: true, detail: `${home} is not a directory`, fix: 'remove it, or set VOS_HOME to another path' };
  if (uid !== undefined && st.uid !== uid) {
    return { name, ok: false, essential: true, detail: `${home} belongs to uid ${st.uid}, not to you (uid ${uid}): the agent refuses it`, fix: `sudo chown -R ${uid} ${home}, or set VOS_HOME to another path` };
  }
  const mode = st.mode & 0o777;
  if (mode !== 0o700) {
    return {
      name,
      ok: false,
      essential: false,
      detail: `${home} is mode ${mode.toString(8).padStart(4, '0')}: others could reach the agent's files until the next agent makes it 0700`,
      fix: `chmod 700 ${home}`,
    };
  }
  return { name, ok: true, essential: true, detail: `${home} (yours, 0700)`, fix: null };
}
