/**
 * The agent's log stays small: repeats are counted, a flood is cut to a number of lines per
 * window, long messages are cut, and the file moves to FILE.1 at its cap.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentLog } from '../../src-main/agent/agent-log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync('/tmp/vos-log-test-');
  dirs.push(dir);
  return join(dir, 'agent.log');
}

function collect(options: Partial<ConstructorParameters<typeof AgentLog>[0]> = {}): { log: AgentLog; lines: string[]; clock: { t: number } } {
  const lines: string[] = [];
  const clock = { t: 1_000_000 };
  const log = new AgentLog({ write: (text) => lines.push(text.replace(/^\S+ /, '').trimEnd()), now: () => clock.t, ...options });
  return { log, lines, clock };
}

describe('AgentLog', () => {
  it('writes a message repeated at once only once, then how often it came', () => {
    const { log, lines } = collect();
    for (let i = 0; i < 10_000; i++) log.log('parsing error: bad sequence');
    log.log('something else');
    log.close();
    expect(lines).toEqual(['parsing error: bad sequence', '(the message before was repeated 9999 more times)', 'something else']);
  });

  it('writes at most so many lines per window and says how many it dropped', () => {
    const { log, lines, clock } = collect({ linesPerWindow: 5, windowMs: 1000 });
    for (let i = 0; i < 100; i++) log.log(`line ${i}`);
    expect(lines).toEqual(['line 0', 'line 1', 'line 2', 'line 3', 'line 4']);
    clock.t += 1000;
    log.log('later');
    expect(lines.slice(5)).toEqual(['(95 log lines were dropped: more than 5 in 1 s)', 'later']);
  });

  it('cuts a long message', () => {
    const { log, lines } = collect();
    log.log('x'.repeat(100_000));
    expect(lines[0]!.length).toBeLessThan(4100);
    expect(lines[0]).toMatch(/… \(96000 more characters\)$/);
  });

  it('moves the file to FILE.1 at its cap and starts it anew', () => {
    const file = tempFile();
    writeFileSync(file, 'from before\n');
    const clock = { t: 0 };
    const log = new AgentLog({ file, maxBytes: 1000, linesPerWindow: 1_000_000, now: () => clock.t });
    for (let i = 0; i < 100; i++) log.log(`message number ${i} ${'-'.repeat(40)}`);
    log.close();
    const current = readFileSync(file, 'utf8');
    const old = readFileSync(`${file}.1`, 'utf8');
    expect(statSync(file).size).toBeLessThanOrEqual(1000);
    expect(statSync(`${file}.1`).size).toBeLessThanOrEqual(1000);
    expect(current).toContain('message number 99 ');
    expect(current.split('\n')[0]).toMatch(/^\S+Z message number \d+ -+$/);
    // What came last before the rotation is the end of FILE.1: nothing between them was lost.
    const lastOld = Number(/message number (\d+) -+\n$/.exec(old)![1]);
    const firstNew = Number(/message number (\d+)/.exec(current)![1]);
    expect(firstNew).toBe(lastOld + 1);
    expect(existsSync(`${file}.2`)).toBe(false);
  });

  it('counts what others wrote to the same file towards the cap', () => {
    const file = tempFile();
    const log = new AgentLog({ file, maxBytes: 1000 });
    writeFileSync(file, 'y'.repeat(990), { flag: 'a' });
    log.log('this does not fit any more');
    log.close();
    expect(readFileSync(`${file}.1`, 'utf8')).toBe('y'.repeat(990));
    expect(readFileSync(file, 'utf8')).toMatch(/this does not fit any more\n$/);
  });
});
