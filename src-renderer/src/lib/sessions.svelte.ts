/**
 * The session list as the UI sees it: kept current by the agent's watch events, plus which
 * session is selected. Components read it; they do not talk to the agent themselves.
 */
import type { ApiClient } from '../../../src-main/api/client';
import type { AdoptableProcess, CreateSessionParams, SessionInfo } from '../../../src-main/api/protocol';

export class SessionsState {
  list = $state<SessionInfo[]>([]);
  selectedId = $state<string | null>(null);
  error = $state<string | null>(null);
  /** Ticks every second so uptimes move (not while the list is stale: they would be made up). */
  now = $state(Date.now());
  /** The agent is gone: the list is what it was then, greyed, its uptimes stopped. */
  stale = $state(false);

  selected = $derived(this.list.find((s) => s.id === this.selectedId) ?? null);
  /** This machine's sessions first, then each paired machine's, by name. */
  groups = $derived(groupByMachine(this.list));
  /** Sessions of another machine whose link went away while they were open here. */
  disconnected = $state<Record<string, string>>({});
  /** Sessions of a paired machine that cannot be reached now (why), shown greyed until it is back. */
  unreachable = $state<Record<string, string>>({});
  /** Per session: how many times it came back from unreachable (a viewer attaches again). */
  comebacks = $state<Record<string, number>>({});

  private client: ApiClient | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor() {
    setInterval(() => {
      if (!this.stale) this.now = Date.now();
    }, 1000);
  }

  /** Follows a (new) client: loads the list and listens to its changes. */
  async bind(client: ApiClient | null): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.client = client;
    if (!client) {
      this.stale = this.list.length > 0;
      return;
    }
    this.unsubscribe = client.onEvent((e) => {
      if (e.event === 'session.added') this.upsert(e.session);
      else if (e.event === 'session.changed') this.upsert(e.session);
      else if (e.event === 'session.removed' && e.unreachable) this.unreachable = { ...this.unreachable, [e.id]: e.unreachable };
      else if (e.event === 'session.removed') this.drop(e.id);
      else if (e.event === 'session.disconnected') this.disconnected = { ...this.disconnected, [e.id]: e.reason };
      else if (e.event === 'session.moved' && this.selectedId === e.id) this.selectedId = e.to; // the view follows it
    });
    try {
      this.list = await client.request('session.watch', { all: true });
      this.unreachable = {};
      this.disconnected = {};
      this.stale = false;
      this.now = Date.now();
      this.error = null;
      if (this.selectedId && !this.list.some((s) => s.id === this.selectedId)) this.selectedId = null;
      if (!this.selectedId) this.selectedId = this.list.find((s) => s.state === 'running')?.id ?? null;
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  /** Forgets unreachable sessions of machines no longer paired (unpaired or forgotten meanwhile). */
  keepPaired(paired: ReadonlySet<string>): void {
    const gone = this.list.filter((s) => s.peer && this.unreachable[s.id] && !paired.has(s.peer.id)).map((s) => s.id);
    for (const id of gone) this.drop(id);
  }

  select(id: string | null): void {
    this.selectedId = id;
  }

  async create(params: CreateSessionParams): Promise<void> {
    if (!this.client) throw new Error('not connected to the agent');
    const session = await this.client.request('session.create', params);
    this.upsert(session);
    this.selectedId = session.id;
  }

  /** The programs on this machine's terminals that could be adopted. */
  async adoptable(): Promise<AdoptableProcess[]> {
    if (!this.client) throw new Error('not connected to the agent');
    return this.client.request('session.adoptable', {});
  }

  /** Takes the program `pid` (and its terminal session) over into a new session, selected. */
  async adopt(pid: number): Promise<void> {
    if (!this.client) throw new Error('not connected to the agent');
    const session = await this.client.request('session.adopt', { pid });
    this.upsert(session);
    this.selectedId = session.id;
  }

  async kill(id: string): Promise<void> {
    await this.run(() => this.client!.request('session.kill', { id }));
  }

  /** Brings back a recoverable session from its latest good image (same id and name). */
  async recover(id: string): Promise<void> {
    await this.run(() => this.client!.request('session.recover', { id }));
  }

  async remove(id: string): Promise<void> {
    await this.run(() => this.client!.request('session.remove', { id, force: true }));
    if (this.selectedId === id) this.selectedId = null;
  }

  private async run(fn: () => Promise<unknown>): Promise<void> {
    if (!this.client) return;
    try {
      this.error = null;
      await fn();
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  private upsert(session: SessionInfo): void {
    if (this.disconnected[session.id]) this.disconnected = without(this.disconnected, session.id);
    if (this.unreachable[session.id]) {
      this.unreachable = without(this.unreachable, session.id);
      this.comebacks = { ...this.comebacks, [session.id]: (this.comebacks[session.id] ?? 0) + 1 };
    }
    const i = this.list.findIndex((s) => s.id === session.id);
    if (i >= 0) this.list[i] = session;
    else this.list.push(session);
  }

  private drop(id: string): void {
    if (this.unreachable[id]) this.unreachable = without(this.unreachable, id);
    this.list = this.list.filter((s) => s.id !== id);
    if (this.selectedId === id) this.selectedId = null;
  }
}

function without(record: Record<string, string>, key: string): Record<string, string> {
  const { [key]: _gone, ...rest } = record;
  return rest;
}

export interface MachineGroup {
  /** null: this machine. */
  peer: { id: string; name: string } | null;
  sessions: SessionInfo[];
}

function groupByMachine(list: SessionInfo[]): MachineGroup[] {
  const local: MachineGroup = { peer: null, sessions: [] };
  const remote = new Map<string, MachineGroup>();
  for (const s of list) {
    if (!s.peer) {
      local.sessions.push(s);
      continue;
    }
    let g = remote.get(s.peer.id);
    if (!g) remote.set(s.peer.id, (g = { peer: s.peer, sessions: [] }));
    g.sessions.push(s);
  }
  return [local, ...[...remote.values()].sort((a, b) => a.peer!.name.localeCompare(b.peer!.name))];
}
