/**
 * Recovery after a crash or a reboot: a session whose pod and terminal host are killed (as a
 * reboot would) is listed by the next agent as recoverable with its latest image, and
 * `vos recover` brings it back with its name, id and memory; a damaged latest image falls back
 * to the one before; `--all`; a session without images is not listed; `vos rm` forgets one;
 * and `vos daemon stop --checkpoint [--end]` writes before-shutdown images first. Real agents,
 * real pods; as root, the first set runs as an ordinary user (nobody) too.
 */
import { readFileSync, readdirSync, rmSync, statSync, truncateSync, openSync, writeSync, writeFileSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { ImageInfo, SessionInfo } from '../../src-main/api/protocol.js';
import { ROOT, UNPRIVILEGED, endHosts, hostPids, startDaemon, vos, waitFor, processAlive as alive, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];
const homes: string[] = [];

afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop({ keepHome: true })));
  for (const h of homes.splice(0)) {
    await endHosts(h);
    rmSync(h, { recursive: true, force: true });
  }
});

const isRoot = process.getuid?.() === 0;
const runAs = isRoot ? [{ who: 'root', user: null }, { who: 'nobody', user: UNPRIVILEGED }] : [{ who: 'this user', user: null }];
if (!isRoot) console.log('recovery tests run as the current user only (not root: no second user to run as)');

async function daemon(options: Parameters<typeof startDaemon>[0] = {}): Promise<DaemonHandle> {
  const d = await startDaemon({ ...options, env: { VOS_MDNS: '0', VOS_LISTEN: 'none', ...options.env } });
  daemons.push(d);
  if (!homes.includes(d.home)) homes.push(d.home);
  return d;
}

/** SIGKILLs the agent and waits until it is gone. */
async function killAgent(d: DaemonHandle): Promise<void> {
  d.proc.kill('SIGKILL');
  await waitFor('the agent to end', () => d.proc.exitCode !== null || d.proc.signalCode !== null, 15_000);
}

/** Every process below `root` (from /proc), `root` excluded. */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    for (const [child, ppid] of parent) if (ppid === pid) (out.push(child), walk(child));
  };
  walk(root);
  return out;
}

/** What a reboot does to a session: its terminal host and every process of its pod die at once. */
async function killPod(home: string, sessionId: string): Promise<void> {
  const host = hostPids(home).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`/pods/${sessionId}.term`));
  if (!host) throw new Error(`no terminal host for session ${sessionId}`);
  const all = [host, ...descendants(host)];
  for (const pid of all) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await waitFor(`the pod of ${sessionId} to die`, () => all.every((pid) => !alive(pid)), 10_000);
}

async function ls(home: string): Promise<SessionInfo[]> {
  const r = await vos(home, ['ls', '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as SessionInfo[];
}

async function checkpoint(home: string, id: string): Promise<ImageInfo> {
  const r = await vos(home, ['checkpoint', id, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const { image } = JSON.parse(r.stdout) as { image: string };
  const images = JSON.parse((await vos(home, ['images', id, '--json'])).stdout) as ImageInfo[];
  return images.find((i) => i.id === image)!;
}

/** A shell in the session, holding `x=VALUE` in its memory. */
async function shell(c: ApiClient, home: string, name: string, value: string): Promise<SessionInfo> {
  const s = await c.request('session.create', { command: 'sh', name, cwd: home, env: { ...(process.env as Record<string, string>), HOME: home, PS1: '$ ' } });
  await c.request('session.wait', { id: s.id, pattern: '^\\$', timeoutMs: 10_000 });
  await setX(c, s.id, value);
  return s;
}

async function setX(c: ApiClient, id: string, value: string): Promise<void> {
  await c.request('session.input', { id, data: `x=${value}; echo set-$x\r` });
  await c.request('session.wait', { id, pattern: `^set-${value}$`, timeoutMs: 10_000 });
}

/** The program runs and remembers: typing into it shows the value it held. */
async function holds(c: ApiClient, id: string, value: string): Promise<void> {
  await c.request('session.input', { id, data: 'echo alive-$x\r' });
  await c.request('session.wait', { id, pattern: `^alive-${value}$`, timeoutMs: 15_000 }).catch(async (e) => {
    throw new Error(`${String(e)}: ${JSON.stringify((await c.request('session.screen', { id })).lines)}`);
  });
}

describe.each(runAs)('recovery (as $who)', ({ user }) => {
  const asUser = user ? { asUser: user } : {};

  it('a pod killed, the agent restarted twice: recoverable with its image; vos recover brings it back with name, id and memory', async () => {
    const d = await daemon(asUser);
    const c = await d.connect();
    const s = await shell(c, d.home, 'keeper', 'kept42');
    const image = await checkpoint(d.home, s.id);
    await killAgent(d);
    await killPod(d.home, s.id);

    const d2 = await daemon({ home: d.home, ...asUser });
    const [listed] = await ls(d.home);
    expect(listed).toMatchObject({ id: s.id, name: 'keeper', state: 'recoverable', recoverable: { image: image.id, imageTime: image.time } });
    const table = await vos(d.home, ['ls']);
    expect(table.stdout).toMatch(new RegExp(`${s.id}\\s+keeper\\s+recoverable \\(image \\d+ (s|min) old\\)`));
    // Another agent start still lists it (the record stays).
    await d2.stop({ keepHome: true });
    const d3 = await daemon({ home: d.home, ...asUser });
    expect((await ls(d.home)).map((x) => [x.id, x.state])).toEqual([[s.id, 'recoverable']]);
    // Only recovery gives it back: the other session methods say so.
    const c3 = await d3.connect();
    await expect(c3.request('session.screen', { id: s.id })).rejects.toThrow(/is recoverable.*vos recover/);

    const r = await vos(d.home, ['recover', 'keeper']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${s.id}\\s+keeper\\s+recovered`));
    const [back] = await ls(d.home);
    expect(back).toMatchObject({ id: s.id, name: 'keeper', state: 'running', restoredFrom: image.file, restoreNote: null });
    expect(back!.recoverable).toBeUndefined();
    await holds(c3, s.id, 'kept42');
    // Recovered, it is an ordinary session again: its record names its new host.
    expect(JSON.parse(readFileSync(join(d.home, 'sessions', `${s.id}.json`), 'utf8'))).toMatchObject({ id: s.id, restoredFrom: image.file });
    const again = await vos(d.home, ['recover', s.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is running: there is nothing to recover/);
  }, 120_000);
});

describe('recovery', () => {
  it('a damaged latest image falls back to the one before, and says so', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await shell(c, d.home, 'layers', 'first');
    const first = await checkpoint(d.home, s.id);
    await setX(c, s.id, 'second');
    const second = await checkpoint(d.home, s.id);
    await setX(c, s.id, 'third');
    const third = await checkpoint(d.home, s.id);
    // The newest is cut short (the store sees it); the one before has bytes changed in the
    // middle, same size (only the restorer's checksums see it).
    truncateSync(third.file, Math.floor(statSync(third.file).size / 2));
    const fd = openSync(second.file, 'r+');
    writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, Math.floor(statSync(second.file).size / 2));
    closeSync(fd);
    await killAgent(d);
    await killPod(d.home, s.id);

    await daemon({ home: d.home });
    const [listed] = await ls(d.home);
    // The latest good image as far as the store can tell without reading it all.
    expect(listed).toMatchObject({ id: s.id, state: 'recoverable', recoverable: { image: second.id } });
    const r = await vos(d.home, ['recover', s.id]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`recovered from the older image ${first.id}`);
    expect(r.stderr).toContain(`image ${third.id}`);
    expect(r.stderr).toMatch(new RegExp(`image ${second.id} of .+? UTC did not restore`));
    const c2 = await daemons.at(-1)!.connect();
    const [back] = await c2.request('session.list', {});
    expect(back).toMatchObject({ id: s.id, state: 'running', restoredFrom: first.file });
    expect(back!.restoreNote).toContain(first.id);
    await holds(c2, s.id, 'first');
  }, 120_000);

  it('when no image restores, recover fails naming each, and the session stays recoverable', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await shell(c, d.home, 'doomed', 'one');
    const only = await checkpoint(d.home, s.id);
    const fd = openSync(only.file, 'r+');
    writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, Math.floor(statSync(only.file).size / 2));
    closeSync(fd);
    await killAgent(d);
    await killPod(d.home, s.id);
    await daemon({ home: d.home });
    const r = await vos(d.home, ['recover', s.id]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cannot recover session ${s.id} \\(doomed\\): image ${only.id} of .+? UTC did not restore: .+`));
    expect((await ls(d.home)).map((x) => [x.id, x.state])).toEqual([[s.id, 'recoverable']]);
    expect(existsSync(join(d.home, 'sessions', `${s.id}.json`))).toBe(true);
  }, 120_000);

  it('--all recovers every recoverable session; one without images is not listed; vos rm forgets one and keeps its images', async () => {
    const d = await daemon();
    const c = await d.connect();
    const a = await shell(c, d.home, 'alpha', 'aaa');
    const b = await shell(c, d.home, 'beta', 'bbb');
    const none = await shell(c, d.home, 'noimage', 'zzz');
    const gone = await shell(c, d.home, 'forget', 'fff');
    await checkpoint(d.home, a.id);
    await checkpoint(d.home, b.id);
    const goneImage = await checkpoint(d.home, gone.id);
    await killAgent(d);
    for (const s of [a, b, none, gone]) await killPod(d.home, s.id);

    const d2 = await daemon({ home: d.home });
    const listed = await ls(d.home);
    expect(listed.map((x) => [x.name, x.state]).sort()).toEqual([['alpha', 'recoverable'], ['beta', 'recoverable'], ['forget', 'recoverable']]);
    expect(existsSync(join(d.home, 'sessions', `${none.id}.json`))).toBe(false);
    await waitFor('the agent to log the forgotten session', () => d2.stderr().includes(`session ${none.id} (noimage) is gone and the image store has no good image of it; forgot it`));

    const rm = await vos(d.home, ['rm', 'forget']);
    expect(rm.code).toBe(0);
    expect((await ls(d.home)).some((x) => x.id === gone.id)).toBe(false);
    expect(existsSync(join(d.home, 'sessions', `${gone.id}.json`))).toBe(false);
    expect(existsSync(goneImage.file)).toBe(true);

    const r = await vos(d.home, ['recover', '--all', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const back = JSON.parse(r.stdout) as SessionInfo[];
    expect(back.map((x) => [x.id, x.name, x.state]).sort()).toEqual([[a.id, 'alpha', 'running'], [b.id, 'beta', 'running']].sort());
    const c2 = await d2.connect();
    await holds(c2, a.id, 'aaa');
    await holds(c2, b.id, 'bbb');
    const nothing = await vos(d.home, ['recover', '--all']);
    expect(nothing.stdout).toBe('no recoverable sessions\n');
  }, 180_000);

  it('vos daemon stop --checkpoint writes a before-shutdown image of each running session; with --end they end and come back recoverable', async () => {
    const d = await daemon();
    const c = await d.connect();
    const a = await shell(c, d.home, 'one', '111');
    const b = await shell(c, d.home, 'two', '222');
    c.close();
    const stopped = await vos(d.home, ['daemon', 'stop', '--checkpoint']);
    expect(stopped.stderr).toBe('');
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toMatch(/checkpointed 2 of 2 sessions/);
    expect(stopped.stdout).toMatch(/sessions keep running/);
    await waitFor('the agent to exit', () => d.proc.exitCode !== null, 10_000);
    expect(alive(a.pid) && alive(b.pid)).toBe(true);

    const d2 = await daemon({ home: d.home });
    const kinds = (JSON.parse((await vos(d.home, ['images', '--json'])).stdout) as ImageInfo[]).map((i) => [i.session.id, i.kind]);
    expect(kinds.sort()).toEqual([[a.id, 'before-shutdown'], [b.id, 'before-shutdown']].sort());
    const c2 = await d2.connect();
    await setX(c2, a.id, '333');
    const ended = await vos(d.home, ['daemon', 'stop', '--checkpoint', '--timeout', '60', '--end']);
    expect(ended.stderr).toBe('');
    expect(ended.code).toBe(0);
    expect(ended.stdout).toMatch(/checkpointed 2 of 2 sessions/);
    expect(ended.stdout).toMatch(/sessions have ended; those checkpointed are recoverable/);
    await waitFor('the agent to exit', () => d2.proc.exitCode !== null, 10_000);
    await waitFor('the programs to end', () => !alive(a.pid) && !alive(b.pid) && hostPids(d.home).length === 0, 10_000);

    const d3 = await daemon({ home: d.home });
    const images = JSON.parse((await vos(d.home, ['images', '--json'])).stdout) as ImageInfo[];
    expect(images.filter((i) => i.kind === 'before-shutdown').length).toBe(4);
    expect((await ls(d.home)).map((x) => [x.id, x.state]).sort()).toEqual([[a.id, 'recoverable'], [b.id, 'recoverable']].sort());
    const r = await vos(d.home, ['recover', '--all']);
    expect(r.code).toBe(0);
    const c3 = await d3.connect();
    await holds(c3, a.id, '333');
    await holds(c3, b.id, '222');
  }, 180_000);

  it('a kept file with other content now refuses the recovery, naming --take-as-is; with it, the program uses the file as it is', async () => {
    const d = await daemon();
    const c = await d.connect();
    // (Not in the state directory: the store keeps no copies of files there.)
    const path = `/tmp/vos-recover-notes-${process.pid}.txt`;
    writeFileSync(path, 'first\n');
    onTestFinished(() => rmSync(path, { force: true }));
    // fd 3 open read-write, not appending: the store keeps the file with the image, and a file
    // there with other content is not the program's to overwrite unless the user says so.
    const script = 'exec 3<>"$0"; echo ready; while read l; do echo "got $l" >&3; echo "wrote-$l"; done';
    const s = await c.request('session.create', { command: 'sh', args: ['-c', script, path], name: 'notes', cwd: d.home });
    await c.request('session.wait', { id: s.id, pattern: '^ready$', timeoutMs: 10_000 });
    await checkpoint(d.home, s.id);
    await killAgent(d);
    await killPod(d.home, s.id);
    writeFileSync(path, 'someone else wrote this\n');

    const d2 = await daemon({ home: d.home });
    const refused = await vos(d.home, ['recover', s.id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${path} differs here (other content; to let the session use it as it is, ask again with --take-as-is ${path})`);
    expect((await ls(d.home)).find((x) => x.id === s.id)?.state).toBe('recoverable');
    expect(readFileSync(path, 'utf8')).toBe('someone else wrote this\n');
    const withAll = await vos(d.home, ['recover', '--all', '--take-as-is', path]);
    expect(withAll.code).toBe(2);
    expect(withAll.stderr).toMatch(/--take-as-is goes with one session/);
    const c2 = await d2.connect();
    await expect(c2.request('session.recover', { all: true, takeAsIs: [path] })).rejects.toThrow(/"takeAsIs" goes with one session/);

    const r = await vos(d.home, ['recover', s.id, '--take-as-is', path]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${path}: other content than at the checkpoint; the session uses it as it is here, as asked`);
    expect(readFileSync(path, 'utf8')).toBe('someone else wrote this\n');
    await c2.request('session.input', { id: s.id, data: 'two\r' });
    await c2.request('session.wait', { id: s.id, pattern: '^wrote-two$', timeoutMs: 10_000 });
    expect(readFileSync(path, 'utf8')).toMatch(/^got two\n/);
  }, 60_000);

  it('agent.stop refuses a timeout without a checkpoint, and session.recover needs an id or all', async () => {
    const d = await daemon();
    const c = await d.connect();
    await expect(c.request('agent.stop', { timeoutMs: 5000 })).rejects.toThrow(/goes with "checkpointFirst"/);
    await expect(c.request('session.recover', {})).rejects.toThrow(/give either "id" or "all"/);
    await expect(c.request('session.recover', { id: 'nope' })).rejects.toThrow(/no session "nope"/);
    const usage = await vos(d.home, ['daemon', 'stop', '--timeout', '5']);
    expect(usage.code).toBe(2);
    expect((await c.request('agent.info', {})).pid).toBe(d.proc.pid);
  }, 60_000);
});

describe('the systemd user unit', () => {
  it('stops the agent only, checkpointing every session first within its stop timeout', () => {
    const unit = readFileSync(join(ROOT, 'resources', 'systemd', 'vos-agent.service'), 'utf8');
    const value = (key: string): string => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1] ?? '';
    expect(value('ExecStart').split(' ').slice(-2)).toEqual(['vos', 'daemon']);
    const stop = value('ExecStop').split(' ');
    expect(stop.slice(1, 6)).toEqual(['vos', 'daemon', 'stop', '--checkpoint', '--timeout']);
    // The checkpoint's own bound is within the unit's, with room for the stop itself.
    expect(Number(value('TimeoutStopSec'))).toBeGreaterThan(Number(stop[6]) + 10);
    expect(value('KillMode')).toBe('process');
  });
});
