/**
 * Coalesces pty output before it is sent to viewers (the idea of Hyper's DataBatcher, with a
 * latency twist). Interactive output (the previous batch was small: an echoed key, a prompt)
 * goes out on the next turn of the event loop, so typing is never held back. Once output is
 * heavy (the previous batch was large), chunks are gathered for up to `intervalMs` or
 * `maxChars`, so a flood becomes a few large messages instead of thousands of small ones.
 */
export interface BatcherOptions {
  intervalMs?: number;
  maxChars?: number;
  /** A batch at least this large means output is heavy: wait for more before the next one. */
  heavyChars?: number;
}

export class OutputBatcher {
  private parts: string[] = [];
  private size = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private lastFlush = 0;
  private lastSize = 0;
  private readonly intervalMs: number;
  private readonly maxChars: number;
  private readonly heavyChars: number;

  constructor(
    private readonly deliver: (data: string) => void,
    options: BatcherOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 16;
    this.maxChars = options.maxChars ?? 256 * 1024;
    this.heavyChars = options.heavyChars ?? 4096;
  }

  push(data: string): void {
    if (data.length === 0) return;
    this.parts.push(data);
    this.size += data.length;
    if (this.size >= this.maxChars) {
      this.flush();
      return;
    }
    if (this.timer) return;
    const wait = this.lastSize >= this.heavyChars ? this.intervalMs - (Date.now() - this.lastFlush) : 0;
    if (wait <= 0) this.timer = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Delivers whatever is gathered now. */
  flush(): void {
    this.cancelTimer();
    if (this.size === 0) return;
    const data = this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
    this.parts = [];
    this.size = 0;
    this.lastFlush = Date.now();
    this.lastSize = data.length;
    this.deliver(data);
  }

  dispose(): void {
    this.cancelTimer();
    this.parts = [];
    this.size = 0;
  }

  private cancelTimer(): void {
    if (!this.timer) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = null;
  }
}
