/**
 * One session's checkpoints in the agent's image store, as the app shows them: the list
 * (`image.list`), "Checkpoint now" (`session.checkpoint` into the store), restoring one into a
 * new session (`session.restore`) and deleting one (`image.remove`). What failed is kept with the
 * agent's reason until the next action. Components read this; they do not call the agent.
 */
import type { ApiClient } from '../../../src-main/api/client';
import type { ImageInfo, SessionInfo } from '../../../src-main/api/protocol';
import { formatBytes } from '../../../src-main/api/session-text';

/** What is under way: one action at a time per session view. */
export type ImageBusy = { what: 'loading' } | { what: 'checkpoint' } | { what: 'restore'; image: string } | { what: 'remove'; image: string };

export class ImagesState {
  /** The session's images, newest first. */
  list = $state<ImageInfo[]>([]);
  /** The session whose images these are. */
  sessionId = $state<string | null>(null);
  busy = $state<ImageBusy | null>(null);
  error = $state<string | null>(null);
  /** What the last action did, for the user ("Checkpoint written: …"). */
  notice = $state<string | null>(null);
  /** The image the user is about to restore (the confirmation is open). */
  confirming = $state<ImageInfo | null>(null);
  /**
   * What a restore of the last checkpoint will not carry (a connection to another machine...):
   * the agent says it before the program is paused (`checkpoint.warning`); once written, the
   * checkpoint's own exact list.
   */
  warnings = $state<string[]>([]);

  private client: ApiClient | null = null;
  private unsubscribe: (() => void) | null = null;
  private loadToken = 0;

  /** Follows a (new) client and a session; loads its list. */
  async show(client: ApiClient | null, sessionId: string | null): Promise<void> {
    const changed = sessionId !== this.sessionId;
    if (client !== this.client) {
      this.unsubscribe?.();
      this.unsubscribe =
        client?.onEvent((e) => {
          if (e.event === 'checkpoint.warning' && e.id === this.sessionId && this.busy?.what === 'checkpoint') this.warnings = [...this.warnings, e.warning];
        }) ?? null;
    }
    this.client = client;
    this.sessionId = sessionId;
    if (changed) {
      this.list = [];
      this.error = null;
      this.notice = null;
      this.confirming = null;
    }
    await this.refresh();
  }

  async refresh(): Promise<void> {
    const client = this.client;
    const session = this.sessionId;
    if (!client || !session) return;
    const token = ++this.loadToken;
    try {
      const list = await client.request('image.list', { session });
      if (token === this.loadToken && session === this.sessionId) this.list = list;
    } catch (err) {
      if (token === this.loadToken) this.error = `Cannot list the checkpoints: ${(err as Error).message}`;
    }
  }

  async checkpoint(): Promise<void> {
    const session = this.sessionId;
    await this.run({ what: 'checkpoint' }, async (client) => {
      const r = await client.request('session.checkpoint', { id: session! });
      const kept = r.keptFiles ? `, ${r.keptFiles} open file${r.keptFiles === 1 ? '' : 's'} kept` : '';
      // What a restore of it will not carry: the exact list, made while the program was paused
      // (the early one, said before, may differ by a connection opened or closed meanwhile).
      this.warnings = r.warnings ?? [];
      this.notice = `Checkpoint written: ${formatBytes(r.bytes)}${kept}; the program was paused ${r.frozenMs} ms.`;
    });
  }

  askRestore(image: ImageInfo): void {
    this.confirming = image;
    this.error = null;
  }

  cancelRestore(): void {
    this.confirming = null;
  }

  /** Restores `image` into a new session; resolves with it (null when it failed: see `error`). */
  async restore(image: ImageInfo, name?: string): Promise<SessionInfo | null> {
    let restored: SessionInfo | null = null;
    this.confirming = null;
    await this.run({ what: 'restore', image: image.id }, async (client) => {
      restored = await client.request('session.restore', { image: image.id, ...(name ? { name } : {}) });
      this.notice = `Restored into the new session “${restored.name}”.${restored.restoreNote ? ` Note: ${restored.restoreNote}.` : ''}`;
    });
    return restored;
  }

  async remove(image: ImageInfo): Promise<void> {
    await this.run({ what: 'remove', image: image.id }, async (client) => {
      await client.request('image.remove', { image: image.id });
      this.notice = `Checkpoint ${image.id} deleted.`;
    });
  }

  private async run(busy: ImageBusy, fn: (client: ApiClient) => Promise<void>): Promise<void> {
    const client = this.client;
    if (!client || !this.sessionId || this.busy) return;
    this.busy = busy;
    this.error = null;
    this.notice = null;
    this.warnings = [];
    try {
      await fn(client);
    } catch (err) {
      this.error = `${ACTION[busy.what]} failed: ${(err as Error).message}`;
    } finally {
      this.busy = null;
    }
    await this.refresh();
  }
}

const ACTION: Record<ImageBusy['what'], string> = {
  loading: 'Loading',
  checkpoint: 'The checkpoint',
  restore: 'The restore',
  remove: 'Deleting',
};

export { formatBytes };

const KIND: Record<ImageInfo['kind'], string> = { manual: 'by hand', scheduled: 'scheduled', 'before-shutdown': 'before shutdown' };

export function kindLabel(kind: ImageInfo['kind']): string {
  return KIND[kind] ?? kind;
}

/** "14:03:12" today, else "2 Mar 14:03". */
export function formatTime(time: number, now: number): string {
  const d = new Date(time);
  const sameDay = new Date(now).toDateString() === d.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}
