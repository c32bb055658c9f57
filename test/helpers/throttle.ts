/**
 * A slow wire between two duplex ends in one process (for tests and benchmarks of the link on a
 * slow network): each direction accepts WIRE_BYTES (like a small kernel buffer) and delivers
 * `rate` bytes a second; a writer beyond that waits, as on a real slow link.
 */
import { Duplex } from 'node:stream';

const WIRE_BYTES = 64 * 1024;
const TICK_MS = 5;

/** One direction of a slow wire: accepts up to WIRE_BYTES, delivers RATE bytes/s to `to`. */
class Wire {
  constructor(private readonly rate: number) {
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }
  private queue: Array<{ buf: Buffer; done: () => void }> = [];
  private onWire = 0;
  private readonly timer: NodeJS.Timeout;
  to: Duplex | null = null;
  write(buf: Buffer, done: () => void): void {
    this.queue.push({ buf, done });
    this.admit();
  }
  private admitted: Buffer[] = [];
  private admit(): void {
    while (this.queue.length > 0 && this.onWire < WIRE_BYTES) {
      const q = this.queue.shift()!;
      this.onWire += q.buf.length;
      this.admitted.push(q.buf);
      q.done();
    }
  }
  private tick(): void {
    let budget = (this.rate * TICK_MS) / 1000;
    while (budget > 0 && this.admitted.length > 0) {
      const b = this.admitted[0]!;
      const n = Math.min(budget, b.length);
      this.to?.push(b.subarray(0, n));
      this.onWire -= n;
      budget -= n;
      if (n === b.length) this.admitted.shift();
      else this.admitted[0] = b.subarray(n);
    }
    this.admit();
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** Two ends of a slow wire (`rate` bytes/s each way); `stop` ends both. */
export function throttledPair(rate: number): { x: Duplex; y: Duplex; stop: () => void } {
  const xy = new Wire(rate);
  const yx = new Wire(rate);
  const x = new Duplex({ read() {}, write: (chunk: Buffer, _e, cb) => xy.write(chunk, () => cb()) });
  const y = new Duplex({ read() {}, write: (chunk: Buffer, _e, cb) => yx.write(chunk, () => cb()) });
  xy.to = y;
  yx.to = x;
  return { x, y, stop: () => (xy.stop(), yx.stop(), x.destroy(), y.destroy()) };
}

