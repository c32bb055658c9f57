/**
 * Sessions in the agent core, with real ptys and programs: lifecycle, the screen mirror, viewers
 * (several, slow, late), resize, and waiting for text.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import xtermHeadless from '@xterm/headless';
import type { AgentMessage, ApiEvent } from '../../src-main/api/protocol.js';
import { VosError } from '../../src-main/api/errors.js';
import { SessionManager } from '../../src-main/agent/session-manager.js';
import type { Session } from '../../src-main/agent/session/session.js';
import type { ViewerSink } from '../../src-main/agent/session/viewer.js';
import { MirrorThread } from '../../src-main/agent/session/mirror-thread.js';
import type { ToMirror } from '../../src-main/agent/session/mirror-protocol.js';
import { waitFor } from '../helpers/agent-process.js';

const { Terminal } = xtermHeadless;

function env(): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) e[k] = v;
  return { ...e, PS1: '$ ' };
}

/** A viewer that records what it is sent; `backlog` pretends its connection is not draining. */
class RecordingViewer implements ViewerSink {
  events: ApiEvent[] = [];
  backlog = 0;
  private drainWaiters: Array<() => void> = [];
  send(m: AgentMessage): void {
    if (m.t === 'event') this.events.push(m);
  }
  bufferedBytes(): number {
    return this.backlog;
  }
  whenDrained(cb: () => void): void {
    if (this.backlog === 0) setImmediate(cb);
    else this.drainWaiters.push(cb);
  }
  drain(): void {
    this.backlog = 0;
    for (const cb of this.drainWaiters.splice(0)) cb();
  }
  output(id: string): string {
    return this.events.map((e) => (e.event === 'session.output' && e.id === id ? e.data : '')).join('');
  }
}

/** Renders escape-sequence output in a fresh terminal and returns its visible rows. */
async function render(data: string, cols: number, rows: number): Promise<string[]> {
  const t = new Terminal({ cols, rows, scrollback: 5000, allowProposedApi: true });
  await new Promise<void>((r) => t.write(data, r));
  const b = t.buffer.active;
  const lines: string[] = [];
  for (let y = 0; y < rows; y++) lines.push(b.getLine(b.baseY + y)?.translateToString(true) ?? '');
  t.dispose();
  return lines;
}

let manager: SessionManager;
const homes: string[] = [];

function newManager(): SessionManager {
  const home = mkdtempSync('/tmp/vos-sess-');
  homes.push(home);
  return new SessionManager({ cwd: '/tmp', env: env(), stateDir: home, agentName: 'test' });
}

afterEach(async () => {
  await manager?.disposeAll(500);
  for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true });
});

function start(command: string, args: string[] = [], size = { cols: 80, rows: 24 }): Session {
  manager ??= newManager();
  return manager.create({ command, args, ...size });
}

describe('sessions', () => {
  it('runs a program, keeps it listed after it exits, with its exit status and last output', async () => {
    manager = newManager();
    const s = start('sh', ['-c', 'echo started; exit 3']);
    expect(s.info()).toMatchObject({ state: 'running', command: 'sh', cwd: '/tmp', cols: 80, rows: 24 });
    expect(s.pid).toBeGreaterThan(1);
    await s.whenExited();
    expect(s.info()).toMatchObject({ state: 'exited', exit: { code: 3, signal: null } });
    expect(s.info().endedAt).toBeGreaterThanOrEqual(s.startedAt);
    expect((await s.screen()).lines[0]).toBe('started');
    expect(manager.list().map((i) => i.id)).toEqual([s.id]);
    await manager.remove(s.id, false);
    expect(manager.list()).toEqual([]);
  });

  it('kills a program with the signal asked for, and refuses to remove a running one without force', async () => {
    manager = newManager();
    const s = start('sleep', ['100']);
    await expect(manager.remove(s.id, false)).rejects.toMatchObject({ code: 'session_running' });
    s.kill('SIGTERM');
    await s.whenExited();
    expect(s.info().exit).toEqual({ code: null, signal: 'SIGTERM' });
    expect(() => s.input('x')).toThrow(/has ended \(killed by SIGTERM\)/);
  });

  it('refuses a command that does not exist and a working directory that does not', () => {
    manager = newManager();
    expect(() => start('no-such-program-vos')).toThrow(/command not found in PATH/);
    expect(() => manager.create({ command: 'sh', cwd: '/no/such/dir' })).toThrow(/does not exist/);
    expect(manager.list()).toEqual([]);
  });

  it('finds sessions by id prefix and name, and says when a reference is ambiguous or unknown', () => {
    manager = newManager();
    const a = manager.create({ command: 'sleep', args: ['100'], name: 'alpha' });
    manager.create({ command: 'sleep', args: ['100'], name: 'beta' });
    expect(manager.resolve('alpha')).toBe(a);
    expect(manager.resolve(a.id.slice(0, 4))).toBe(a);
    expect(() => manager.resolve('zzzz-none')).toThrow(VosError);
    expect(() => manager.resolve('')).toThrow(/matches several sessions/);
  });

  it('mirrors the screen after a burst of output', async () => {
    manager = newManager();
    const s = start('seq', ['1', '200000']);
    await s.whenExited();
    const screen = await s.screen();
    expect(screen.lines[22]).toBe('200000');
    expect(screen.lines[0]).toBe('199978');
  });

  it('keeps the scrollback of a terminal that parsed all of a flood (the mirror fast-forwards over the rest)', async () => {
    manager = newManager();
    // About 2.7 MB of plain lines: most of it is pushed out of the 10,000 lines of scrollback
    // before anyone could see it, which the mirror skips; what it keeps must be exact.
    const s = start('sh', ['-c', 'seq 1 400000; printf "\\033[1;31mred\\033[0m end"; read x']);
    await s.waitFor(/red end/, 30_000);
    const viewer = new RecordingViewer();
    const a = await s.attach(viewer, null);
    a.release();
    const t = new Terminal({ cols: 80, rows: 24, scrollback: 10_000, allowProposedApi: true });
    await new Promise<void>((r) => t.write(a.result.snapshot, r));
    const b = t.buffer.active;
    const all: string[] = [];
    for (let y = 0; y < b.length; y++) all.push(b.getLine(y)?.translateToString(true).trimEnd() ?? '');
    t.dispose();
    // 24 rows and 10,000 lines above them, the last row the prompt-less "red end" line.
    expect(all).toHaveLength(10_024);
    // So the first line kept is line 400,000 - 10,022 + 1 of seq, and every one after it.
    expect(all.slice(0, -1)).toEqual(Array.from({ length: 10_023 }, (_, i) => String(389_978 + i)));
    expect(all[all.length - 1]).toBe('red end');
    expect(a.result.snapshot).toMatch(/\x1b\[[0-9;]*31[0-9;]*mred/); // the colour after the flood is kept
  });

  it('goes on when the mirror thread dies: its screens start again empty, and new output shows', async () => {
    manager = newManager();
    const logs: string[] = [];
    const thread = MirrorThread.shared();
    const log = thread.log;
    thread.log = (m) => logs.push(m);
    try {
      const s = start('sh', ['-c', 'echo before-$((6*7)); read x; echo after-$((6*7)); read y']);
      await s.waitFor(/before-42/, 10_000);
      // Something the thread cannot take (the agent never sends it) ends it.
      thread.post({ t: 'open', mirror: 1e9, cols: 80, rows: 24 });
      thread.post({ t: 'write', mirror: 1e9, data: null, quiet: false, asks: false, report: true } as unknown as ToMirror);
      await waitFor('the log to say so', () => logs.find((l) => /screen mirror thread stopped .*start again empty/.test(l)));
      s.input('\r');
      const screen = await s.waitFor(/after-42/, 10_000);
      expect(screen.lines.join('\n')).not.toContain('before-42');
      const viewer = new RecordingViewer();
      const a = await s.attach(viewer, null);
      a.release();
      expect(a.result.snapshot).toContain('after-42');
    } finally {
      thread.log = log;
    }
  });

  it('tells a viewer of the exit that came while its screen was being taken', async () => {
    manager = newManager();
    const s = start('sh', ['-c', 'read x; exit 3']);
    const viewer = new RecordingViewer();
    const a = await s.attach(viewer, null);
    // The reply is not out yet (its output is held) when the program ends.
    s.input('\r');
    await s.whenExited();
    expect(viewer.events.filter((e) => e.event === 'session.exited')).toHaveLength(0);
    a.release();
    const exits = viewer.events.filter((e) => e.event === 'session.exited');
    expect(exits).toHaveLength(1);
    expect(exits[0]).toMatchObject({ id: s.id, session: { state: 'exited', exit: { code: 3 } } });
  });

  it('gives two viewers the same output, and a late viewer a snapshot that joins live output exactly', async () => {
    manager = newManager();
    const s = start('sh', ['-c', 'for i in $(seq 1 400); do echo "line $i"; done; read x; for i in $(seq 401 800); do echo "line $i"; done; read y'], {
      cols: 60,
      rows: 20,
    });
    const first = new RecordingViewer();
    const a = await s.attach(first, null);
    a.release();
    await s.waitFor(/line 400/, 10_000);
    // A second viewer arrives in the middle of the program's life.
    const late = new RecordingViewer();
    const b = await s.attach(late, null);
    b.release();
    s.input('\r');
    await s.waitFor(/line 800/, 10_000);
    await waitFor('the late viewer to get line 800', () => late.output(s.id).includes('line 800'));
    expect(first.output(s.id)).toContain('line 1\r\n');
    expect(first.output(s.id)).toContain('line 800');
    expect(late.output(s.id)).not.toContain('line 400\r\n');
    const fromLate = await render(b.result.snapshot + late.output(s.id), 60, 20);
    const fromFirst = await render(a.result.snapshot + first.output(s.id), 60, 20);
    expect(fromLate).toEqual((await s.screen()).lines);
    expect(fromFirst).toEqual(fromLate);
  });

  it('does not let a viewer that stops reading hold up the program or the other viewers', async () => {
    manager = newManager();
    const s = start('sh', ['-c', 'seq 1 100000; read x; echo after-resync'], { cols: 40, rows: 10 });
    const stuck = new RecordingViewer();
    stuck.backlog = 10 * 1024 * 1024; // its connection never drains
    const healthy = new RecordingViewer();
    (await s.attach(stuck, null)).release();
    (await s.attach(healthy, null)).release();
    await s.waitFor(/^100000$/m, 15_000);
    await waitFor('the healthy viewer to see the end', () => healthy.output(s.id).includes('100000'));
    expect(stuck.events.filter((e) => e.event === 'session.output')).toHaveLength(0);
    // Once it drains it gets a fresh snapshot, then live output again.
    stuck.drain();
    await waitFor('a resync', () => stuck.events.find((e) => e.event === 'session.resync'));
    s.input('\r');
    await waitFor('live output after the resync', () => stuck.output(s.id).includes('after-resync'));
    const resync = stuck.events.find((e) => e.event === 'session.resync');
    expect(resync && 'snapshot' in resync ? resync.snapshot : '').toContain('100000');
  });

  it('follows the size of the viewer that last typed or resized; watching does not take it', async () => {
    manager = newManager();
    const s = start('sh', ['-c', 'while read line; do stty size; done']);
    const small = new RecordingViewer();
    const big = new RecordingViewer();
    (await s.attach(small, { cols: 70, rows: 20 })).release();
    // Watching does not take the size: the first viewer's stays until another types or resizes.
    (await s.attach(big, { cols: 120, rows: 40 })).release();
    expect(s.info()).toMatchObject({ cols: 70, rows: 20 });
    s.input('\r', big);
    expect(s.info()).toMatchObject({ cols: 120, rows: 40 });
    await s.waitFor(/^40 120$/m, 5000);
    s.input('\r', small);
    await s.waitFor(/^20 70$/m, 5000);
    s.resize(90, 25, big);
    expect(s.info()).toMatchObject({ cols: 90, rows: 25 });
    s.input('\r', big); // already the active one: its size stays
    await s.waitFor(/^25 90$/m, 5000);
    // A terminal attached to be used (vos attach) takes it at once.
    const cli = new RecordingViewer();
    (await s.attach(cli, { cols: 60, rows: 18 }, undefined, true)).release();
    expect(s.info()).toMatchObject({ cols: 60, rows: 18 });
    s.detach(cli);
    s.detach(big);
    s.resize(100, 30);
    expect(s.info()).toMatchObject({ cols: 100, rows: 30, viewers: 1 });
  });

  it('waits for text, times out with a clear error, and fails when the program ends first', async () => {
    manager = newManager();
    const s = start('sh', ['-c', 'sleep 0.3; echo ready; sleep 0.5']);
    const screen = await s.waitFor(/read[y]/, 5000);
    expect(screen.lines.join('\n')).toContain('ready');
    await expect(s.waitFor(/never/, 100)).rejects.toMatchObject({ code: 'timeout', message: expect.stringMatching(/timed out after 0.1 s/) });
    await expect(s.waitFor(/never/, 10_000)).rejects.toMatchObject({ code: 'session_exited' });
  });
});
