/**
 * The machines of the community as the UI sees them, kept current by the agent's peer events,
 * and the pairing actions. Both users confirm a pairing's code: a pairing waits in `undecided`
 * until this user answers it, whichever side asked (the side asked: accept or reject; the side
 * that asked: the other machine shows the same code, or it differs).
 */
import type { ApiClient } from '../../../src-main/api/client';
import type { PeerInfo } from '../../../src-main/api/protocol';

export class PeersState {
  list = $state<PeerInfo[]>([]);
  error = $state<string | null>(null);
  /** Per machine id: what is going on or what went wrong, for its row. */
  notes = $state<Record<string, string>>({});

  incoming = $derived(this.list.filter((p) => p.pairing?.direction === 'incoming'));
  /** Pairings in progress that wait for this user to compare the codes, either direction. */
  undecided = $derived(this.list.filter((p) => p.pairing !== null && !p.pairing.confirmed));
  sorted = $derived(
    [...this.list].sort((a, b) => Number(b.paired) - Number(a.paired) || Number(b.online) - Number(a.online) || a.name.localeCompare(b.name)),
  );

  /** Shown at once: paired, online, pairing, or flagged. */
  shown = $derived(this.sorted.filter((p) => !isIdle(p)));
  /** Offline machines that are not paired: kept folded away. */
  idle = $derived(this.sorted.filter(isIdle));

  private client: ApiClient | null = null;
  private unsubscribe: (() => void) | null = null;

  async bind(client: ApiClient | null): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.client = client;
    if (!client) return;
    this.unsubscribe = client.onEvent((e) => {
      if (e.event === 'peer.changed' || e.event === 'pair.requested') this.upsert(e.peer);
      else if (e.event === 'peer.removed') this.list = this.list.filter((p) => p.id !== e.id);
    });
    try {
      this.list = await client.request('peer.watch', {});
      this.error = null;
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  name(id: string): string {
    return this.list.find((p) => p.id === id)?.name ?? id.slice(0, 8);
  }

  /**
   * Asks the machine to pair; the code shows on its row (and in the dialog, where this user
   * confirms that the other machine shows the same) until both users answered.
   */
  async pair(id: string): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.note(id, null);
    try {
      const { peer } = await client.request('pair.request', { peer: id });
      this.upsert(peer);
      const paired = await client.request('pair.wait', { peer: id, timeoutMs: 120_000 });
      this.upsert(paired);
    } catch (err) {
      this.note(id, (err as Error).message);
    }
  }

  /** Accepts a request with the code this machine shows for it (the user compared them). */
  async accept(id: string): Promise<void> {
    const code = this.list.find((p) => p.id === id)?.pairing?.code;
    if (!code) return;
    await this.act(id, () => this.client!.request('pair.accept', { peer: id, code }));
  }

  /** This machine asked: its user saw the same code on the other machine. */
  async confirm(id: string): Promise<void> {
    const code = this.list.find((p) => p.id === id)?.pairing?.code;
    if (!code) return;
    await this.act(id, () => this.client!.request('pair.confirm', { peer: id, code }));
  }

  /** Refuses a request, or cancels this machine's own (its user saw another code there). */
  async reject(id: string): Promise<void> {
    await this.act(id, () => this.client!.request('pair.reject', { peer: id }));
  }

  async unpair(id: string): Promise<void> {
    await this.act(id, () => this.client!.request('peer.unpair', { peer: id }));
  }

  /** Forgets a machine that is not paired (it leaves the list until it is seen again). */
  async forget(id: string): Promise<void> {
    if (!this.client) return;
    this.note(id, null);
    try {
      await this.client.request('peer.forget', { peer: id });
      this.list = this.list.filter((p) => p.id !== id);
    } catch (err) {
      this.note(id, (err as Error).message);
    }
  }

  /** Adds a machine by address; returns an error message, or null. */
  async add(address: string): Promise<string | null> {
    if (!this.client) return 'not connected to the agent';
    try {
      this.upsert(await this.client.request('peer.add', { address }));
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  private async act(id: string, fn: () => Promise<PeerInfo>): Promise<void> {
    if (!this.client) return;
    this.note(id, null);
    try {
      this.upsert(await fn());
    } catch (err) {
      this.note(id, (err as Error).message);
    }
  }

  private note(id: string, text: string | null): void {
    const next = { ...this.notes };
    if (text) next[id] = text;
    else delete next[id];
    this.notes = next;
  }

  private upsert(peer: PeerInfo): void {
    const i = this.list.findIndex((p) => p.id === peer.id);
    if (i >= 0) this.list[i] = peer;
    else this.list.push(peer);
  }
}

function isIdle(p: PeerInfo): boolean {
  return !p.paired && !p.online && p.pairing === null && !p.warning;
}
