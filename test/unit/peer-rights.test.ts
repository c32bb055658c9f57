/**
 * A paired peer's rights, as the dispatcher enforces them (api/peer-rights.ts): on machine B, a
 * peer A may move B's session only to A itself; naming a third machine C (or one B does not
 * know) is refused before anything moves, and a local client of B may still name C.
 */
import { describe, expect, it } from 'vitest';
import type { AgentMessage, MigrationResult } from '../../src-main/api/protocol.js';
import { PROTOCOL_VERSION } from '../../src-main/api/protocol.js';
import { ONLY_TO_ITSELF } from '../../src-main/api/peer-rights.js';
import { ApiDispatcher, type AgentServices, type ConnectionPolicy } from '../../src-main/agent/api-dispatcher.js';
import type { Connection } from '../../src-main/agent/transports/connection.js';
import { VosError } from '../../src-main/api/errors.js';

const A = { id: 'a'.repeat(64), name: 'alpha' };
const C = { id: 'c'.repeat(64), name: 'gamma' };

/** Machine B's dispatcher, with a community knowing A and C and a migrator that records its calls. */
function machineB(): { dispatcher: ApiDispatcher; moves: Array<{ id: string; peer: string }> } {
  const moves: Array<{ id: string; peer: string }> = [];
  const known = [A, C];
  const community = {
    resolve(ref: string) {
      const p = known.find((k) => k.name === ref || k.id.startsWith(ref));
      if (!p) throw new VosError('unknown_peer', `no machine ${ref}`);
      return { ...p };
    },
  };
  const migrator = {
    migrate(id: string, peer: string): Promise<MigrationResult> {
      moves.push({ id, peer });
      return Promise.resolve({ from: id } as MigrationResult);
    },
  };
  // Only what session.migrate touches is given; the rest of the agent is not needed here.
  const services = {
    sessions: {},
    community,
    migrations: { migrator, receiver: {} },
    info: () => ({ name: 'beta' }),
    enableWeb: () => Promise.reject(new Error('no web')),
    requestStop: () => {},
    log: () => {},
  } as unknown as AgentServices;
  return { dispatcher: new ApiDispatcher(services), moves };
}

/** Sends one request over a fresh connection with `policy`; resolves with its response. */
async function ask(dispatcher: ApiDispatcher, policy: ConnectionPolicy, method: string, params: unknown): Promise<AgentMessage> {
  const replies: AgentMessage[] = [];
  const conn: Connection = {
    label: 'test',
    send: (m: AgentMessage) => replies.push(m),
    bufferedBytes: () => 0,
    whenDrained: (cb: () => void) => cb(),
    close: () => {},
  } as unknown as Connection;
  const handle = dispatcher.open(conn, policy);
  handle.receive({ t: 'hello', protocol: PROTOCOL_VERSION, client: 'test' });
  handle.receive({ t: 'req', id: 1, method, params });
  for (let i = 0; i < 100 && !replies.some((r) => r.t === 'res'); i++) await new Promise((r) => setTimeout(r, 5));
  const res = replies.find((r) => r.t === 'res');
  if (!res) throw new Error('no response');
  return res;
}

describe('a paired peer moving a session of this machine', () => {
  const peerA: ConnectionPolicy = { kind: 'peer', peer: A };

  it('is refused when it names a third machine: nothing moves', async () => {
    const { dispatcher, moves } = machineB();
    for (const target of ['gamma', C.id, C.id.slice(0, 8), 'nowhere']) {
      const res = await ask(dispatcher, peerA, 'session.migrate', { id: 's1', peer: target });
      expect(res).toMatchObject({ t: 'res', ok: false, error: { code: 'refused', message: ONLY_TO_ITSELF } });
    }
    expect(moves).toEqual([]);
  });

  it('may move it to itself', async () => {
    const { dispatcher, moves } = machineB();
    const res = await ask(dispatcher, peerA, 'session.migrate', { id: 's1', peer: A.id });
    expect(res).toMatchObject({ t: 'res', ok: true });
    expect(moves).toEqual([{ id: 's1', peer: A.id }]);
  });

  it('a local client of this machine may name any paired machine', async () => {
    const { dispatcher, moves } = machineB();
    const res = await ask(dispatcher, { kind: 'local' }, 'session.migrate', { id: 's1', peer: 'gamma' });
    expect(res).toMatchObject({ t: 'res', ok: true });
    expect(moves).toEqual([{ id: 's1', peer: 'gamma' }]);
  });

  it('a peer may not call what is local only', async () => {
    const { dispatcher } = machineB();
    const res = await ask(dispatcher, peerA, 'peer.sessions', {});
    expect(res).toMatchObject({ t: 'res', ok: false, error: { code: 'refused' } });
  });

  it('a peer may not answer or confirm pairings of this machine (pair.confirm, pair.accept, ...)', async () => {
    const { dispatcher } = machineB();
    for (const [method, params] of [
      ['pair.confirm', { peer: 'gamma', code: '123456' }],
      ['pair.accept', { peer: 'gamma', code: '123456' }],
      ['pair.request', { peer: 'gamma' }],
      ['pair.reject', { peer: 'gamma' }],
    ] as const) {
      const res = await ask(dispatcher, peerA, method, params);
      expect(res).toMatchObject({ t: 'res', ok: false, error: { code: 'refused' } });
    }
  });
});
