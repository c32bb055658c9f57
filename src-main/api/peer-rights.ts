/**
 * What a paired machine may ask of this one, per method, in one place: the dispatcher checks a
 * peer's requests against it and ARCHITECTURE.md's method table shows it (its "peer" column is
 * checked against this map by test/unit/architecture-doc.test.ts).
 *
 * The map names every method (the compiler refuses one that is missing), so a new method needs a
 * decision. A local client (same user) may call every method; what differs is a peer's right:
 *
 * - 'local': a peer may not call it;
 * - 'peer': a peer may call it as a local client would;
 * - { peer: 'only to itself' }: a peer may call it only naming itself as the other machine
 *   (for a method with a `peer` parameter). A paired machine may move this machine's session
 *   to itself, never to a third machine: that one would run it without its user being asked.
 *
 * No Node or DOM imports here: the renderer compiles this file too.
 */
import type { Method, ParamsOf, PeerSelector } from './protocol.js';

/** A peer's right to some method, as read back. */
export type PeerRight = 'local' | 'peer' | { peer: 'only to itself' };

/** A peer's right to method M: the narrowing exists only for methods naming a peer. */
type PeerRightOf<M extends Method> = Exclude<PeerRight, object> | (ParamsOf<M> extends PeerSelector ? { peer: 'only to itself' } : never);

export const PEER_RIGHTS: { readonly [M in Method]: PeerRightOf<M> } = {
  'agent.info': 'peer',
  'agent.web': 'local',
  'agent.stop': 'local',
  'session.list': 'peer',
  'session.watch': 'peer',
  'session.create': 'local',
  'session.kill': 'peer',
  'session.remove': 'local',
  'session.resize': 'peer',
  'session.input': 'peer',
  'session.screen': 'peer',
  'session.wait': 'peer',
  'session.attach': 'peer',
  'session.detach': 'peer',
  'session.redraw': 'peer',
  'session.checkpoint': 'local',
  'session.restore': 'local',
  'session.adopt': 'local',
  'session.adoptable': 'local',
  'session.recover': 'local',
  'image.list': 'local',
  'image.remove': 'local',
  'schedule.set': 'local',
  'schedule.off': 'local',
  'schedule.list': 'local',
  'schedule.default': 'local',
  'peer.list': 'local',
  'peer.watch': 'local',
  'peer.add': 'local',
  'peer.unpair': 'local',
  'peer.forget': 'local',
  'peer.sessions': 'local',
  'pair.request': 'local',
  'pair.confirm': 'local',
  'pair.wait': 'local',
  'pair.pending': 'local',
  'pair.accept': 'local',
  'pair.reject': 'local',
  'session.migrate': { peer: 'only to itself' },
  'migration.offer': 'peer',
  'migration.files': 'peer',
  'migration.result': 'peer',
  'migration.go': 'peer',
  'migration.abort': 'peer',
};

/** What ARCHITECTURE.md's "peer" column says for a method: "yes", empty, or the narrowing. */
export function peerRightText(method: Method): string {
  const right: PeerRight = PEER_RIGHTS[method];
  if (right === 'peer') return 'yes';
  if (right === 'local') return '';
  return right.peer;
}

/** Why a refusal: a peer naming another machine than itself for a method it may call only so. */
export const ONLY_TO_ITSELF =
  'a paired machine may move a session of this machine only to itself; ask on this machine to move it elsewhere';
