/**
 * The agent's image store, `<state>/images/`:
 *
 *   ID.vosimg      an image (the format of docs/image-format.md, checked whole by the restorer)
 *   ID.json        its description: session, time, kind, parent, size, the kept files, and
 *                  for an image of a chain (incremental checkpoints) its CHAIN id and depth
 *   blobs/SHA256   content shared between images: today the kept open files (kept-files.ts),
 *                  later the chunks of incremental images; named by the SHA-256 of the content
 *                  and counted by the descriptions that name them (a blob no image names goes)
 *
 * An image exists once its description does. Writes go in this order, each one atomic
 * (atomic-file.ts): the blobs, the image (renamed from its temporary file), the description.
 * A crash or a full disk at any point leaves every earlier image as it was; what it leaves
 * behind (temporary files, an image without description, blobs nobody names) is swept when the
 * store is opened, before any checkpoint of this agent can be under way. Images written
 * elsewhere (`--out`) or by older versions (NAME-STAMP-ID.vosimg) are not the store's: never
 * listed nor swept, still restorable by path.
 *
 * Scheduling, recovery and the app build on this: `begin`/`commit` take a checkpoint of any
 * kind, `forSession` gives a session's images newest first (recovery takes the latest good one
 * and falls back to the one before), `prune` keeps N.
 *
 * Incremental images (ARCHITECTURE.md, "Incremental checkpoints") name their `parent`, the image
 * whose pages they take where the program did not write since. An image whose parent chain is
 * not all there and whole (by the same cheap look) is listed damaged, naming the parent. `prune`
 * keeps the newest N and every image one of them needs (those are not counted: keeping 3 of a
 * chain may keep up to 3 + 7 files); `remove` refuses an image another one needs. Chains are at
 * most 8 images long (pod init writes a whole image every 8th time), so this stays bounded.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { VosError } from '../../api/errors.js';
import type { FileNeed, ImageInfo, ImageKind } from '../../api/protocol.js';
import { shortId } from '../../base/ids.js';
import { commitTemp, createTempBeside, discardTemp, fsyncDir, TEMP_MARK, writeFileAtomic, type TempFile } from './atomic-file.js';
import type { KeptFile } from './kept-files.js';

const IMAGE_ID = /^[0-9a-f]{8}$/;
const HASH = /^[0-9a-f]{64}$/;
const KINDS: readonly ImageKind[] = ['manual', 'scheduled', 'before-shutdown'];

/** An image's description as stored in ID.json. */
interface Description {
  v: 1;
  id: string;
  session: { id: string; name: string };
  time: number;
  kind: ImageKind;
  parent: string | null;
  bytes: number;
  files: FileNeed[];
  /** The image's CHAIN record (incremental checkpoints): its id and how many images lie below. */
  chain?: ChainLink;
}

/** An image's place in a chain of incremental images, as its CHAIN record says. */
export interface ChainLink {
  id: string;
  depth: number;
}

/** An image of the store with the files kept with it. */
export interface StoredImage {
  info: ImageInfo;
  files: FileNeed[];
  chain: ChainLink | null;
}

/** A checkpoint into the store under way: the image's temporary file (hand `temp.fd` to the writer). */
export interface PendingImage {
  id: string;
  session: { id: string; name: string };
  kind: ImageKind;
  time: number;
  temp: TempFile;
}

export class ImageStore {
  readonly blobDir: string;

  constructor(readonly dir: string) {
    this.blobDir = join(dir, 'blobs');
  }

  /** Creates the directories (private) and removes what a crash left behind. */
  open(): this {
    mkdirSync(this.blobDir, { recursive: true, mode: 0o700 });
    this.sweep();
    return this;
  }

  /** A new image: its id and temporary file. */
  begin(session: { id: string; name: string }, kind: ImageKind): PendingImage {
    mkdirSync(this.blobDir, { recursive: true, mode: 0o700 });
    let id = shortId(4);
    while (existsSync(this.descriptionPath(id)) || existsSync(this.imagePath(id))) id = shortId(4);
    return { id, session, kind, time: Date.now(), temp: createTempBeside(this.imagePath(id)) };
  }

  /**
   * Makes a complete image part of the store, with the content of the files kept with it.
   * Synchronous on purpose: nothing else of the store runs in between (no sweep of a blob that
   * is about to be named). Throws (and leaves the store as before) on failure.
   */
  commit(p: PendingImage, kept: KeptFile[], chain: (ChainLink & { parent: string | null }) | null = null): StoredImage {
    const fresh: string[] = [];
    try {
      for (const k of kept) if (this.putBlob(k)) fresh.push(k.need.hash);
      if (fresh.length > 0) fsyncDir(this.blobDir);
      commitTemp(p.temp);
      const bytes = statSync(p.temp.final).size;
      const d: Description = {
        v: 1,
        id: p.id,
        session: p.session,
        time: p.time,
        kind: p.kind,
        parent: chain?.parent ?? null,
        bytes,
        files: kept.map((k) => k.need),
        ...(chain ? { chain: { id: chain.id, depth: chain.depth } } : {}),
      };
      writeFileAtomic(this.descriptionPath(p.id), JSON.stringify(d) + '\n');
      return this.get(p.id);
    } catch (err) {
      discardTemp(p.temp);
      rmSync(p.temp.final, { force: true });
      for (const hash of fresh) if (!this.namedBlobs().has(hash)) rmSync(this.blobPath(hash), { force: true });
      throw err;
    }
  }

  /** A checkpoint into the store that failed: its temporary file goes. */
  abort(p: PendingImage): void {
    discardTemp(p.temp);
  }

  /** The images, newest first; `session`: of the session with that id, id prefix or name. */
  list(session?: string): ImageInfo[] {
    const all = this.all();
    const mine = session === undefined ? all : all.filter((s) => s.info.session.id === session || s.info.session.id.startsWith(session) || s.info.session.name === session);
    return mine.map((s) => s.info);
  }

  /** The images of one session (by id), newest first: recovery takes the first good one. */
  forSession(sessionId: string): StoredImage[] {
    return this.all().filter((s) => s.info.session.id === sessionId);
  }

  /** An image by id or unique id prefix. */
  get(ref: string): StoredImage {
    const matches = this.all().filter((s) => s.info.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) throw new VosError('unknown_image', `no image "${ref}" in the store (see vos images)`);
    throw new VosError('unknown_image', `"${ref}" matches several images: ${matches.map((s) => s.info.id).join(', ')}; give more of the id`);
  }

  /** The store's image at this path, if it is one (a restore by path still gets its kept files). */
  byFile(path: string): StoredImage | null {
    return this.all().find((s) => s.info.file === path) ?? null;
  }

  blobPath(hash: string): string {
    if (!HASH.test(hash)) throw new VosError('bad_image', `a kept file's hash is not a SHA-256: ${hash}`);
    return join(this.blobDir, hash);
  }

  /**
   * The image a new incremental image of the session would build on: its newest image, if that
   * is part of a chain and whole (pod init checks that it is the one its tracking started from).
   */
  chainTip(sessionId: string): { image: string; chain: ChainLink } | null {
    const newest = this.forSession(sessionId).find((s) => s.chain !== null);
    return newest && newest.chain && newest.info.state === 'ok' ? { image: newest.info.id, chain: newest.chain } : null;
  }

  /** The image files an incremental image needs, its parent first; [] for a whole one. */
  parentFiles(id: string): string[] {
    const byId = new Map(this.all().map((s) => [s.info.id, s]));
    const files: string[] = [];
    for (let at = byId.get(id)?.info.parent ?? null; at !== null; at = byId.get(at)?.info.parent ?? null) {
      const parent = byId.get(at);
      if (!parent) throw new VosError('bad_image', `image ${id} needs its parent image ${at}, which is not in the store`);
      files.push(parent.info.file);
    }
    return files;
  }

  /** Removes an image (its description first: from then on it is gone), then the blobs no image names. */
  remove(ref: string): string {
    const { info } = this.get(ref);
    const children = this.all().filter((s) => s.info.parent === info.id);
    if (children.length > 0) {
      throw new VosError(
        'invalid_params',
        `image ${info.id} is the parent of ${children.map((c) => c.info.id).join(', ')} (incremental images take its pages): remove ${children.length > 1 ? 'those' : 'that one'} first`,
      );
    }
    unlinkSync(this.descriptionPath(info.id));
    rmSync(this.imagePath(info.id), { force: true });
    fsyncDir(this.dir);
    this.sweepBlobs();
    return info.id;
  }

  /**
   * Keeps the newest `keep` images of a session and every image they need (the parents of
   * incremental ones, not counted); returns the ids removed. Newest first: a child goes before
   * its parent.
   */
  prune(sessionId: string, keep: number): string[] {
    const mine = this.forSession(sessionId);
    const byId = new Map(mine.map((s) => [s.info.id, s]));
    const needed = new Set<string>();
    for (const s of mine.slice(0, keep)) {
      for (let at: string | null = s.info.id; at !== null && !needed.has(at); at = byId.get(at)?.info.parent ?? null) needed.add(at);
    }
    return mine.filter((s) => !needed.has(s.info.id)).map((s) => this.remove(s.info.id));
  }

  /** Temporary files, images without a description, blobs that no image names. */
  sweep(): void {
    const described = new Set<string>();
    for (const name of readdirSync(this.dir)) {
      const m = /^([0-9a-f]{8})\.json$/.exec(name);
      if (m) described.add(m[1]!);
    }
    for (const name of readdirSync(this.dir)) {
      const image = /^([0-9a-f]{8})\.vosimg$/.exec(name);
      if (name.startsWith('.') && name.includes(TEMP_MARK)) rmSync(join(this.dir, name), { force: true });
      else if (image && !described.has(image[1]!)) rmSync(join(this.dir, name), { force: true });
    }
    this.sweepBlobs();
  }

  private sweepBlobs(): void {
    let names: string[];
    try {
      names = readdirSync(this.blobDir);
    } catch {
      return;
    }
    const named = this.namedBlobs();
    for (const name of names) if (!named.has(name)) rmSync(join(this.blobDir, name), { force: true });
  }

  private namedBlobs(): Set<string> {
    const named = new Set<string>();
    for (const s of this.all()) for (const f of s.files) named.add(f.hash);
    return named;
  }

  /** Writes a blob unless the store has it already; true if it was written now. */
  private putBlob(k: KeptFile): boolean {
    const path = this.blobPath(k.need.hash);
    try {
      if (statSync(path).size === k.data.length) return false; // shared with another image
    } catch {
      /* not there yet */
    }
    const temp = createTempBeside(path);
    try {
      for (let off = 0; off < k.data.length; ) off += writeSync(temp.fd, k.data, off, k.data.length - off);
      commitTemp(temp);
    } catch (err) {
      discardTemp(temp);
      throw err;
    }
    return true;
  }

  /** Every described image, newest first; a description that cannot be read is listed as damaged. */
  private all(): StoredImage[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const images: StoredImage[] = [];
    for (const name of names) {
      const m = /^([0-9a-f]{8})\.json$/.exec(name);
      if (!m) continue;
      let d: Description;
      try {
        d = parseDescription(readFileSync(join(this.dir, name), 'utf8'), m[1]!);
      } catch (err) {
        images.push({ info: this.unreadable(m[1]!, (err as Error).message), files: [], chain: null });
        continue;
      }
      images.push(this.described(d));
    }
    markBrokenChains(images);
    return images.sort((a, b) => b.info.time - a.info.time || (a.info.id < b.info.id ? 1 : -1));
  }

  /** The description with a cheap look at the files: missing or cut short is damaged. */
  private described(d: Description): StoredImage {
    const file = this.imagePath(d.id);
    let problem: string | null = null;
    try {
      const size = statSync(file).size;
      if (size !== d.bytes) problem = `the image file has ${size} of its ${d.bytes} bytes`;
    } catch {
      problem = 'the image file is missing';
    }
    for (const f of d.files) {
      if (problem) break;
      try {
        if (statSync(join(this.blobDir, f.hash)).size !== f.size) problem = `the kept copy of ${f.path} is damaged`;
      } catch {
        problem = `the kept copy of ${f.path} is missing`;
      }
    }
    return {
      info: {
        id: d.id,
        session: d.session,
        time: d.time,
        kind: d.kind,
        file,
        bytes: d.bytes,
        keptFiles: d.files.length,
        keptBytes: d.files.reduce((n, f) => n + f.size, 0),
        parent: d.parent,
        state: problem ? 'damaged' : 'ok',
        problem,
      },
      files: d.files,
      chain: d.chain ?? null,
    };
  }

  private unreadable(id: string, why: string): ImageInfo {
    let time = 0;
    try {
      time = statSync(this.descriptionPath(id)).mtimeMs;
    } catch {
      /* gone meanwhile */
    }
    return {
      id,
      session: { id: '?', name: '?' },
      time,
      kind: 'manual',
      file: this.imagePath(id),
      bytes: 0,
      keptFiles: 0,
      keptBytes: 0,
      parent: null,
      state: 'damaged',
      problem: `its description cannot be read: ${why}`,
    };
  }

  private imagePath(id: string): string {
    return join(this.dir, `${id}.vosimg`);
  }

  private descriptionPath(id: string): string {
    return join(this.dir, `${id}.json`);
  }
}

function chainOk(c: unknown): boolean {
  const x = c as Partial<Record<keyof ChainLink, unknown>> | null;
  return !!x && typeof x.id === 'string' && /^[0-9a-f]{32}$/.test(x.id) && Number.isSafeInteger(x.depth) && (x.depth as number) >= 0 && (x.depth as number) < 8;
}

/** An incremental image whose parent is missing or damaged is damaged too, naming it. */
function markBrokenChains(images: StoredImage[]): void {
  const byId = new Map(images.map((s) => [s.info.id, s]));
  const broken = (s: StoredImage, seen: Set<string>): string | null => {
    const parent = s.info.parent;
    if (parent === null) return null;
    const p = byId.get(parent);
    if (!p) return `it needs its parent image ${parent}, which is missing`;
    if (seen.has(parent)) return `its chain of parent images loops at ${parent}`;
    seen.add(parent);
    if (p.info.state === 'damaged') return `it needs its parent image ${parent}, which is damaged (${p.info.problem})`;
    const below = broken(p, seen);
    return below === null ? null : `it needs its parent image ${parent}, which is damaged (${below})`;
  };
  for (const s of images) {
    if (s.info.state !== 'ok') continue;
    const why = broken(s, new Set([s.info.id]));
    if (why !== null) s.info = { ...s.info, state: 'damaged', problem: why };
  }
}

/** An image's description; throws on anything that is not one. */
function parseDescription(text: string, id: string): Description {
  const d = JSON.parse(text) as Partial<Record<keyof Description, unknown>>;
  const str = (v: unknown): v is string => typeof v === 'string';
  const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  const session = d.session as { id?: unknown; name?: unknown } | undefined;
  const fileOk = (f: unknown): boolean => {
    const x = f as Partial<Record<keyof FileNeed, unknown>> | null;
    return !!x && str(x.path) && x.path.startsWith('/') && count(x.size) && str(x.hash) && HASH.test(x.hash) && count(x.mode) && x.mode <= 0o7777 && (x.appendOnly === undefined || typeof x.appendOnly === 'boolean');
  };
  if (
    d.v !== 1 ||
    d.id !== id ||
    !IMAGE_ID.test(id) ||
    !session ||
    !str(session.id) ||
    !str(session.name) ||
    !count(d.time) ||
    !KINDS.includes(d.kind as ImageKind) ||
    !(d.parent === null || (str(d.parent) && IMAGE_ID.test(d.parent))) ||
    !count(d.bytes) ||
    !Array.isArray(d.files) ||
    !d.files.every(fileOk) ||
    !(d.chain === undefined || chainOk(d.chain)) ||
    (d.parent !== null && d.chain === undefined)
  ) {
    throw new Error('it is not an image description');
  }
  return d as Description;
}
