/**
 * The target half of a migration. A paired peer offers a session (`migration.offer`: checked
 * here before the source freezes anything), streams its image (a link stream naming the offer),
 * with the open files it lacks sent along first (`migration.files`: all in place, checked),
 * asks for the result (`migration.result`: restored and held at the barrier, not running), and
 * then says `migration.go` (it ended the original) or `migration.abort`. A held session that
 * hears neither within the pod's hold time ends by itself; an offer never streamed expires.
 */
import { randomBytes } from 'node:crypto';
import { arch } from 'node:os';
import { VosError } from '../../api/errors.js';
import type { MigrationOffer, SessionInfo } from '../../api/protocol.js';
import type { IncomingStream } from '../community/link-streams.js';
import { runtimeFiles } from '../runtime/native.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session-manager.js';
import { IncomingFiles, checkIncomingPath } from './incoming-files.js';
import type { HeldJournal } from './held-journal.js';
import { badListener, listenersTakenHere } from './listeners.js';
import { locksTakenHere } from './locks.js';
import { inodeBoundHere } from './inode-bound.js';
import { mappedFilesHere } from './mapped-files.js';
import type { IncomingRelays, RelayHub } from '../relay/relay-hub.js';
import { DEFAULT_ACCEPT_LIMITS, missingHere, refusalDetails, takenAsIsNote, type AcceptLimits } from './preflight.js';

const OFFER_EXPIRES_MS = 60_000;
/** Offers whose files are compared at once (each may read HASH_BUDGET_PER_OFFER bytes); more are refused with `busy`. */
const MAX_OFFERS_CHECKED = 2;
/** A "go" may be asked again (its answer lost on the way): it is answered again for this long. */
const GONE_REMEMBERED_MS = 15 * 60_000;

interface Incoming {
  id: string;
  peer: { id: string; name: string };
  offer: MigrationOffer;
  /** Settles when the image is restored and held (or failed). */
  restored: Promise<Session>;
  settle: { resolve: (s: Session) => void; reject: (e: VosError) => void };
  started: boolean;
  files: IncomingFiles;
  /** Files the session only appends to, here with other content: taken as they are (its note). */
  takenAsIs: string[];
  /** Files here with other content the source's user asked to take as they are (FileNeed.asIs). */
  askedAsIs: string[];
  session: Session | null;
  /** Letting the copy run, once asked (a second "go" waits for the first). */
  going?: Promise<Session>;
  timer: NodeJS.Timeout;
}

export class MigrationReceiver {
  private readonly incoming = new Map<string, Incoming>();
  /** Migrations whose copy was let go here: which peer asked, and the session it became. */
  private readonly gone = new Map<string, { peerId: string; session: Session }>();
  /** Offers whose files are being compared now. */
  private checking = 0;

  constructor(
    private readonly sessions: SessionManager,
    private readonly log: (message: string) => void,
    /** What this machine takes sent along, whatever the source says it may send. */
    private readonly accept: AcceptLimits = DEFAULT_ACCEPT_LIMITS,
    /** Where held copies are recorded, so that an agent started again takes them back (null: not kept). */
    private readonly journal: HeldJournal | null = null,
    /** Where the connections a move keeps at its source reach the program here (null: they come back closed). */
    private readonly relays: RelayHub | null = null,
  ) {}

  /**
   * After a restart: the copies an earlier agent held (their sessions adopted by now) are held
   * again, waiting for the source's "go" or "abort" as before. A record whose copy is gone is
   * dropped.
   */
  recover(): void {
    if (!this.journal) return;
    const { records, bad } = this.journal.pending();
    for (const path of bad) this.log(`set aside an unreadable held-copy record: ${path}`);
    for (const r of records) {
      let session: Session | null = null;
      try {
        session = this.sessions.resolve(r.session);
      } catch {
        /* gone */
      }
      if (!session || session.id !== r.session || !session.running) {
        this.log(`migration ${r.migration} from ${r.peer.name}: its held copy is gone`);
        this.forgetHeld(r.migration);
        continue;
      }
      const s = session;
      const timer = setTimeout(() => {}, 0);
      const m: Incoming = {
        id: r.migration,
        peer: r.peer,
        offer: r.offer,
        restored: Promise.resolve(s),
        settle: { resolve: () => {}, reject: () => {} },
        started: true,
        takenAsIs: [], // noted when it was restored, before the restart
        askedAsIs: [],
        files: new IncomingFiles(r.migration, []),
        session: s,
        timer,
      };
      this.incoming.set(r.migration, m);
      this.whenEnded(m, s);
      this.log(`migration ${r.migration}: holding again the copy from ${r.peer.name} (session ${s.id}), for its "go" or "abort"`);
    }
  }

  async offer(peer: { id: string; name: string }, offer: MigrationOffer): Promise<{ migration: string; wanted: string[]; mappedHere: string[] }> {
    if (!runtimeFiles()) throw new VosError('refused', 'the vOS runtime is not built on this machine');
    if (offer.arch !== arch()) throw new VosError('refused', `this machine is ${arch()}; the session runs on ${offer.arch}`);
    // Paths a peer names are looked at (and files put there) only in their normal form.
    const badPath = [...offer.dirs.map((d) => checkIncomingPath(d, 'dir')), ...offer.files.map((f) => checkIncomingPath(f.path))].find((p) => p !== null);
    if (badPath) throw new VosError('refused', `the offer names a path this machine does not take: ${badPath}`);
    const listeners = offer.listeners ?? [];
    const badListen = listeners.map(badListener).find((p) => p !== null);
    if (badListen) throw new VosError('refused', `the offer names ${badListen}`);
    const locks = offer.locks ?? [];
    const badLock = locks.map((l) => checkIncomingPath(l)).find((p) => p !== null);
    if (badLock) throw new VosError('refused', `the offer names a locked file this machine does not take: ${badLock}`);
    const inodeBound = offer.inodeBound ?? [];
    const badBound = inodeBound.map((f) => checkIncomingPath(f.path)).find((p) => p !== null);
    if (badBound) throw new VosError('refused', `the offer names a file this machine does not take: ${badBound}`);
    // Mapped files are only looked at (stat), and only in their normal form: others are not "here".
    const mapped = (offer.mappedFiles ?? []).filter((f) => checkIncomingPath(f.path) === null);
    if (this.checking >= MAX_OFFERS_CHECKED) throw new VosError('busy', `${MAX_OFFERS_CHECKED} migrations are being checked here already: try again in a moment`);
    this.checking++;
    let checked: Awaited<ReturnType<typeof missingHere>>;
    try {
      checked = await missingHere(offer.dirs, offer.files, offer.sendUpTo, this.accept);
      checked.problems.push(...(await listenersTakenHere(listeners)));
      checked.problems.push(...locksTakenHere(locks));
      checked.problems.push(...inodeBoundHere(inodeBound));
    } finally {
      this.checking--;
    }
    const { problems, wanted, takenAsIs, askedAsIs } = checked;
    if (problems.length > 0) {
      const lacks = `${problems.slice(0, 8).join('; ')}${problems.length > 8 ? `; and ${problems.length - 8} more` : ''}`;
      throw new VosError('refused', `the session needs what this machine lacks: ${lacks}`, refusalDetails(checked));
    }
    const id = randomBytes(8).toString('hex');
    let settle!: Incoming['settle'];
    const restored = new Promise<Session>((resolve, reject) => (settle = { resolve, reject }));
    restored.catch(() => {}); // a result nobody asks for is not an unhandled rejection
    const timer = setTimeout(() => {
      const m = this.incoming.get(id);
      if (m && !m.started) {
        this.incoming.delete(id);
        void m.files.removeAll();
        settle.reject(new VosError('timeout', 'no image came for this migration'));
      }
    }, OFFER_EXPIRES_MS);
    timer.unref();
    const files = new IncomingFiles(id, wanted);
    this.incoming.set(id, { id, peer, offer, restored, settle, started: false, files, takenAsIs, askedAsIs, session: null, timer });
    this.log(`${peer.name} offers session ${offer.name} (${offer.command}); migration ${id}${wanted.length ? `; ${wanted.length} files to send along` : ''}`);
    return { migration: id, wanted: files.paths, mappedHere: mappedFilesHere(mapped) };
  }

  /** A stream from a paired peer: a migration's image or a file sent along, or refused. */
  stream(peer: { id: string; name: string }, stream: IncomingStream): void {
    const meta = stream.meta as { migration?: unknown; file?: unknown } | null;
    const m = typeof meta?.migration === 'string' ? this.incoming.get(meta.migration) : undefined;
    if (m && m.peer.id === peer.id && !m.started && typeof meta?.file === 'string') {
      if (!m.files.accept(meta.file, stream)) stream.destroy(new Error(`${meta.file} was not asked for`));
      return;
    }
    if (!m || m.peer.id !== peer.id || m.started) {
      stream.destroy(new Error('no such migration was offered here'));
      return;
    }
    m.started = true;
    clearTimeout(m.timer);
    const { offer } = m;
    let relays: IncomingRelays | null = null;
    (this.relays ? this.relays.incoming(m.id, m.peer) : Promise.resolve(null))
      .then((r) => {
        relays = r;
        const onPlaced = (bytes: number): void => {
          if (bytes > 0) this.log(`migration ${m.id}: ${(bytes / 1048576).toFixed(1)} MiB of its memory moved into place as it arrived`);
        };
        return this.sessions.receive({ ...offer, label: `the image from ${peer.name}`, onPlaced, ...(r ? { restoreEnv: r.env } : {}) }, stream);
      })
      .finally(() => relays?.close()) // every relayed connection is made before the restore says it is done
      .then(
        (session) => {
          if (relays) {
            session.showRelayed(relays.list);
            relays.onChange = () => session.relayedChanged();
          }
          if (this.incoming.get(m.id) !== m) {
            void this.sessions.discard(session); // called off while it was being restored
            return;
          }
          if (m.takenAsIs.length || m.askedAsIs.length) session.addRestoreNote(takenAsIsNote(m.takenAsIs, m.askedAsIs));
          m.session = session;
          // Recorded before the source hears that it is held: killed after that, an agent
          // started again here still has it for the source's "go".
          try {
            this.journal?.write({ migration: m.id, peer: m.peer, session: session.id, offer: m.offer, heldAt: Date.now() });
          } catch (err) {
            this.incoming.delete(m.id);
            void this.sessions.discard(session);
            void m.files.removeAll();
            m.settle.reject(new VosError('restore_failed', `cannot record the held copy on this machine's disk: ${(err as Error).message}`));
            return;
          }
          this.whenEnded(m, session);
          m.settle.resolve(session);
        },
        (err: unknown) => {
          this.incoming.delete(m.id);
          void m.files.removeAll();
          this.log(`migration ${m.id} from ${peer.name} failed: ${(err as Error).message}`);
          m.settle.reject(err instanceof VosError ? err : new VosError('restore_failed', String(err)));
        },
      );
  }

  async files(peer: { id: string }, id: string): Promise<{ received: number }> {
    return { received: await this.find(peer, id).files.all() };
  }

  async result(peer: { id: string }, id: string): Promise<SessionInfo> {
    return (await this.find(peer, id).restored).info();
  }

  /**
   * The source ended the original: the copy runs. Asked again (the source did not hear the
   * answer, or restarted), it answers again; for a copy it does not hold (never offered, or its
   * hold time ended) the error is `unknown_session`, so the source stops asking.
   */
  async go(peer: { id: string }, id: string): Promise<SessionInfo> {
    const done = this.gone.get(id);
    if (done && done.peerId === peer.id) return done.session.info();
    const m = this.incoming.get(id);
    if (!m || m.peer.id !== peer.id) throw new VosError('unknown_session', `no copy of migration ${id} is held here (its hold time ended, or this agent restarted)`);
    m.going ??= (async () => {
      const session = await m.restored;
      await this.sessions.release(session);
      this.incoming.delete(id);
      this.forgetHeld(id);
      this.gone.set(id, { peerId: peer.id, session });
      setTimeout(() => this.gone.delete(id), GONE_REMEMBERED_MS).unref();
      this.log(`migration ${id}: session ${session.id} runs here now`);
      return session;
    })();
    return (await m.going).info();
  }

  async abort(peer: { id: string }, id: string): Promise<Record<string, never>> {
    const m = this.find(peer, id);
    this.incoming.delete(id);
    clearTimeout(m.timer);
    if (m.session) await this.sessions.discard(m.session);
    else m.settle.reject(new VosError('migration_failed', 'called off by the source'));
    this.forgetHeld(id);
    await m.files.removeAll();
    return {};
  }

  /** A held copy that ends (its hold time passed, discarded) is no longer held. */
  private whenEnded(m: Incoming, session: Session): void {
    session.whenExited().then(
      () => {
        if (this.incoming.get(m.id) === m) this.incoming.delete(m.id);
        if (!this.gone.has(m.id)) this.forgetHeld(m.id);
      },
      () => {},
    );
  }

  private forgetHeld(migration: string): void {
    try {
      this.journal?.remove(migration);
    } catch (err) {
      this.log(`migration ${migration}: cannot remove its held-copy record: ${(err as Error).message}`);
    }
  }

  private find(peer: { id: string }, id: string): Incoming {
    const m = this.incoming.get(id);
    if (!m || m.peer.id !== peer.id) throw new VosError('invalid_params', `no migration ${id} from this machine is in progress here`);
    return m;
  }
}
