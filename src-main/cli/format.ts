/** Plain-text rendering for the CLI's human (non --json) output. */
import type { SessionInfo } from '../api/protocol.js';
import { commandLine, stateLabel, uptime } from '../api/session-text.js';

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function sessionsTable(sessions: SessionInfo[], now = Date.now()): string {
  if (sessions.length === 0) return 'no sessions (start one with: vos run -- COMMAND)\n';
  return table(
    ['ID', 'NAME', 'STATE', 'PID', 'UPTIME', 'COMMAND'],
    sessions.map((s) => [s.id, s.name, stateLabel(s), String(s.pid), uptime(s, now), commandLine(s)]),
  );
}
