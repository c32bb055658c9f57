/**
 * How long the agent's event loop was held up (for benchmarks and diagnosis): on only when the
 * agent starts with VOS_LOOP_DELAY=1, as it samples every millisecond (an idle agent should not
 * wake a thousand times a second). `agent.info` reports it (`loopDelay`) and can start it over.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { LoopDelay } from '../api/protocol.js';

export class LoopDelayMonitor {
  private readonly histogram: IntervalHistogram;
  private since = Date.now();

  private constructor() {
    this.histogram = monitorEventLoopDelay({ resolution: 1 });
    this.histogram.enable();
  }

  /** A monitor when the environment asks for one, else null. */
  static fromEnv(env: NodeJS.ProcessEnv): LoopDelayMonitor | null {
    return env.VOS_LOOP_DELAY === '1' ? new LoopDelayMonitor() : null;
  }

  /** The delays since the start or the last reset; `reset` starts over after reading. */
  read(reset: boolean): LoopDelay {
    const ms = (ns: number): number => Math.round(ns / 1e3) / 1e3;
    const h = this.histogram;
    const delay: LoopDelay = {
      sinceMs: Date.now() - this.since,
      // The histogram counts from the timer's interval: the delay is what lies beyond it.
      maxMs: h.count ? ms(Math.max(0, h.max - 1e6)) : 0,
      p99Ms: h.count ? ms(Math.max(0, h.percentile(99) - 1e6)) : 0,
      samples: h.count,
    };
    if (reset) {
      h.reset();
      this.since = Date.now();
    }
    return delay;
  }

  stop(): void {
    this.histogram.disable();
  }
}
