/** Plain-text rendering for the CLI's human (non --json) output. */
import type { PeerInfo, SessionInfo } from '../api/protocol.js';
import { commandLine, stateLabel, uptime } from '../api/session-text.js';
import { cleanPeerText, PEER_NAME_MAX } from '../base/peer-text.js';

/**
 * A machine's name as the terminal may show it. The agent cleans what peers say on arrival; the
 * CLI cleans again, for an agent of another version or a name that slipped through.
 */
export function peerName(name: string): string {
  return cleanPeerText(name, PEER_NAME_MAX) || '?';
}

/** Other text that came from another machine (its system, a warning naming it), made safe to show. */
export function peerText(text: string): string {
  return cleanPeerText(text, 500);
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** How a person types a session's reference: `ID`, or `ID@MACHINE` for a peer's session. */
export function sessionRef(s: SessionInfo): string {
  return s.peer ? `${s.id.slice(0, s.id.lastIndexOf('@'))}@${peerName(s.peer.name)}` : s.id;
}

export function sessionsTable(sessions: SessionInfo[], now = Date.now()): string {
  if (sessions.length === 0) return 'no sessions (start one with: vos run -- COMMAND)\n';
  const remote = sessions.some((s) => s.peer);
  const header = ['ID', 'NAME', 'STATE', 'PID', 'UPTIME', 'COMMAND'];
  if (remote) header.splice(1, 0, 'MACHINE');
  // Why sessions so marked cannot be, once under the table (each distinct reason).
  const reasons = [...new Set(sessions.filter((s) => s.state === 'running' && s.cannotCheckpoint).map((s) => s.cannotCheckpoint!))];
  const notes =
    reasons.map((r) => `${NO_POD_MARK}: ${peerText(r)}\n`).join('') +
    sessions
      .flatMap((s) => (s.relayed ?? []).map((c) => `${sessionRef(s)}: ${peerText(c.what)}, kept open by ${peerName(c.via.name)} and relayed\n`))
      .join('');
  return table(
    header,
    sessions.map((s) => {
      const state = s.state === 'running' && s.cannotCheckpoint ? `${stateLabel(s, now)}, ${NO_POD_MARK}` : stateLabel(s, now);
      const row = [sessionRef(s), s.name, state, s.state === 'recoverable' ? '-' : String(s.pid), s.state === 'recoverable' ? '-' : uptime(s, now), commandLine(s)];
      if (remote) row.splice(1, 0, s.peer ? peerName(s.peer.name) : '(this one)');
      return row;
    }),
  ) + notes;
}

/** How `vos ls` marks a session without a pod. */
export const NO_POD_MARK = 'cannot be checkpointed or moved';

export function peersTable(peers: PeerInfo[], now = Date.now()): string {
  if (peers.length === 0) return 'no machines known (none found on this network; vos peer add HOST:PORT adds one)\n';
  return table(
    ['ID', 'NAME', 'PAIRED', 'ONLINE', 'LAST SEEN', 'OS', 'ADDRESSES'],
    peers.map((p) => [
      peerText(p.shortId),
      peerName(p.name),
      p.paired ? 'yes' : p.pairing ? `pairing (${p.pairing.direction === 'incoming' ? 'asks you' : 'asked'}; code ${p.pairing.code})` : 'no',
      p.online ? (p.link === 'up' ? 'yes, linked' : 'yes') : 'no',
      p.online ? 'now' : p.lastSeen ? `${ago(now - p.lastSeen)} ago` : 'never',
      peerText([p.os, p.arch].filter(Boolean).join(' ')) || '?',
      peerText(p.addresses.join(' ') || '-') + (p.warning ? `  WARNING: ${peerText(p.warning)}` : ''),
    ]),
  );
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** Sizes as every client writes them (api/session-text.ts). */
export { formatBytes } from '../api/session-text.js';
