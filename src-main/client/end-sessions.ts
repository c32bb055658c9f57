/**
 * Ending every session of an agent on purpose (the tray's "Quit and end all sessions"): each
 * running program is hung up (SIGHUP, as closing a terminal does), killed if it is still there
 * after a grace period, and its session removed so that its terminal host ends too. Sessions
 * that had already ended are left listed. Sessions of other machines are never touched.
 * (With the option to checkpoint first, the agent does it: `agent.stop { checkpointFirst,
 * endSessions }`, see agent-supervisor.ts.)
 */
import type { ApiClient } from '../api/client.js';
import type { SessionInfo } from '../api/protocol.js';

export interface EndSessionsResult {
  /** Sessions whose programs ended here and that were removed. */
  ended: string[];
  failed: { id: string; reason: string }[];
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function waitUntilEnded(client: ApiClient, ids: Set<string>, timeoutMs: number): Promise<Set<string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await client.request('session.list', {});
    const still = new Set(list.filter((s) => ids.has(s.id) && s.state === 'running').map((s) => s.id));
    if (still.size === 0 || Date.now() > deadline) return still;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function endAllSessions(client: ApiClient, options: { graceMs?: number } = {}): Promise<EndSessionsResult> {
  const graceMs = options.graceMs ?? 2000;
  const running = (await client.request('session.list', {})).filter((s: SessionInfo) => !s.peer && s.state === 'running');
  const failed: EndSessionsResult['failed'] = [];
  const fail = (id: string, err: unknown): void => {
    failed.push({ id, reason: message(err) });
  };
  const ids = new Set<string>();
  for (const s of running) {
    try {
      await client.request('session.kill', { id: s.id });
      ids.add(s.id);
    } catch (err) {
      fail(s.id, err);
    }
  }
  let left = await waitUntilEnded(client, ids, graceMs);
  // A kill that fails here (it ended meanwhile) is judged by the list below.
  for (const id of left) await client.request('session.kill', { id, signal: 'KILL' }).catch(() => undefined);
  left = await waitUntilEnded(client, left, graceMs);
  const ended: string[] = [];
  for (const id of ids) {
    if (left.has(id)) {
      fail(id, 'its program did not end after SIGHUP and SIGKILL');
      continue;
    }
    try {
      await client.request('session.remove', { id });
      ended.push(id);
    } catch (err) {
      fail(id, err);
    }
  }
  return { ended, failed };
}
