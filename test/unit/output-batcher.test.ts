import { describe, expect, it } from 'vitest';
import { OutputBatcher } from '../../src-main/agent/session/output-batcher.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('output batcher', () => {
  it('sends small output on the next turn of the event loop, however often it comes', async () => {
    const out: string[] = [];
    const b = new OutputBatcher((d) => out.push(d), { intervalMs: 50, heavyChars: 100 });
    for (const key of 'abc') {
      b.push(key);
      expect(out.at(-1)).not.toBe(key);
      await tick();
      expect(out.at(-1)).toBe(key);
    }
  });

  it('coalesces heavy output into one delivery per interval, in order', async () => {
    const out: string[] = [];
    const b = new OutputBatcher((d) => out.push(d), { intervalMs: 30, heavyChars: 10 });
    b.push('a heavy first batch');
    await tick();
    expect(out).toEqual(['a heavy first batch']);
    for (let i = 0; i < 100; i++) b.push(String(i % 10));
    await tick();
    expect(out).toHaveLength(1);
    await sleep(60);
    expect(out).toHaveLength(2);
    expect(out[1]).toBe('0123456789'.repeat(10));
  });

  it('flushes at once when the batch is full', () => {
    const out: string[] = [];
    const b = new OutputBatcher((d) => out.push(d), { maxChars: 10 });
    b.push('12345');
    b.push('67890');
    expect(out).toEqual(['1234567890']);
    b.dispose();
  });
});
