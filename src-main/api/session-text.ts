/** Human wording for session facts, shared by the CLI and the app so both say the same thing. */
import type { ExitStatus, SessionInfo } from './protocol.js';

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** How old an image is, for people: "40 s", "5 min", "3 h", "2 days". */
export function imageAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} days`;
}

export function uptime(s: SessionInfo, now: number): string {
  return formatDuration((s.endedAt ?? now) - s.startedAt);
}

/** "running", "exited (0)", "exited (SIGKILL)", "recoverable (image 5 min old)". */
export function stateLabel(s: SessionInfo, now = Date.now()): string {
  if (s.state === 'running') return 'running';
  if (s.state === 'recoverable') {
    return s.recoverable ? `recoverable (image ${imageAge(now - s.recoverable.imageTime)} old)` : 'recoverable (no good image left)';
  }
  if (s.exit?.signal) return `exited (${s.exit.signal})`;
  return `exited (${s.exit?.code ?? '?'})`;
}

/** "exit status 0", "killed by SIGKILL", "still running". */
export function describeExit(exit: ExitStatus | null): string {
  if (!exit) return 'still running';
  return exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`;
}

export function commandLine(s: SessionInfo): string {
  return [s.command, ...s.args].join(' ');
}

/** A size for people: "512 B", "3.4 KiB", "2.1 MiB", "1.25 GiB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
