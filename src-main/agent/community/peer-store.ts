/**
 * What this agent remembers about other machines across restarts (`peers.json` in the state
 * directory, 0600): the paired ones with the certificate they paired with, and the addresses
 * where any peer was reached or added by hand (so `vos peer add` works where multicast does
 * not, also after a restart). Keyed by device id, never by address or name.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeviceId } from '../../base/device-id.js';
import { writePrivateFile } from '../../base/state-dir.js';

export interface StoredPeer {
  id: string;
  name: string;
  /** Set once paired: the peer must present exactly this certificate (its id is its hash). */
  paired: boolean;
  pairedAt: number | null;
  /** host:port, most recently working first. */
  addresses: string[];
  /** Added by hand (`vos peer add`): keep trying these addresses. */
  manual: boolean;
  lastSeen: number | null;
}

interface StoreFile {
  version: 1;
  peers: StoredPeer[];
}

const MAX_ADDRESSES = 8;

export class PeerStore {
  private readonly path: string;
  private readonly peers = new Map<string, StoredPeer>();

  constructor(home: string, private readonly log: (message: string) => void) {
    this.path = join(home, 'peers.json');
    this.load();
  }

  all(): StoredPeer[] {
    return [...this.peers.values()];
  }

  get(id: string): StoredPeer | undefined {
    return this.peers.get(id);
  }

  /** Creates or updates the record and saves it. */
  update(id: string, change: Partial<Omit<StoredPeer, 'id'>> & { address?: string }): StoredPeer {
    const current = this.peers.get(id) ?? { id, name: '', paired: false, pairedAt: null, addresses: [], manual: false, lastSeen: null };
    const { address, ...fields } = change;
    const next: StoredPeer = { ...current, ...fields };
    if (address) next.addresses = [address, ...current.addresses.filter((a) => a !== address)].slice(0, MAX_ADDRESSES);
    this.peers.set(id, next);
    this.save();
    return next;
  }

  /** Forgets the pairing; the record stays only if it still has a reason to (added by hand). */
  unpair(id: string): void {
    const p = this.peers.get(id);
    if (!p) return;
    if (p.manual) this.peers.set(id, { ...p, paired: false, pairedAt: null });
    else this.peers.delete(id);
    this.save();
  }

  /** Forgets everything about the machine (`vos peer forget`). */
  remove(id: string): void {
    if (this.peers.delete(id)) this.save();
  }

  private load(): void {
    if (!existsSync(this.path)) return;
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as Partial<StoreFile>;
      for (const p of parsed.peers ?? []) {
        if (!isDeviceId(p.id) || typeof p.name !== 'string' || !Array.isArray(p.addresses)) continue;
        this.peers.set(p.id, {
          id: p.id,
          name: p.name,
          paired: p.paired === true,
          pairedAt: typeof p.pairedAt === 'number' ? p.pairedAt : null,
          addresses: p.addresses.filter((a): a is string => typeof a === 'string').slice(0, MAX_ADDRESSES),
          manual: p.manual === true,
          lastSeen: typeof p.lastSeen === 'number' ? p.lastSeen : null,
        });
      }
    } catch (err) {
      // A damaged file must not stop the agent; pairings in it are lost and the user re-pairs.
      this.log(`ignoring ${this.path}: ${(err as Error).message}`);
    }
  }

  private save(): void {
    const file: StoreFile = { version: 1, peers: this.all() };
    try {
      writePrivateFile(this.path, JSON.stringify(file, null, 2) + '\n');
    } catch (err) {
      this.log(`cannot save ${this.path}: ${(err as Error).message}`);
    }
  }
}
