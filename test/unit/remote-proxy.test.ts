/**
 * A peer that never answers (its link is up, but no hello or response ever comes) does not make
 * a local client wait forever: `vos ls --all` gets the other machines' sessions and, for that
 * one, why not (timeout); a request about one of its sessions fails with `timeout`.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiClient, type MessageTransport } from '../../src-main/api/client.js';
import type { AgentMessage, ClientMessage, SessionInfo } from '../../src-main/api/protocol.js';
import { PROTOCOL_VERSION } from '../../src-main/api/protocol.js';
import { ANSWER_TIMEOUT_MS, RemoteProxy } from '../../src-main/agent/community/remote-proxy.js';
import type { Community } from '../../src-main/agent/community/community.js';
import type { Connection } from '../../src-main/agent/transports/connection.js';

const SILENT = { id: 's'.repeat(64), name: 'silent' };
const GOOD = { id: 'g'.repeat(64), name: 'good' };

/** A channel to a peer: `silent` swallows everything; `good` answers hello and lists one session. */
function transport(answering: boolean): MessageTransport {
  let receive: (m: AgentMessage) => void = () => {};
  return {
    send(m: ClientMessage) {
      if (!answering) return;
      const reply = (r: AgentMessage): void => void Promise.resolve().then(() => receive(r));
      if (m.t === 'hello') reply({ t: 'hello', protocol: PROTOCOL_VERSION, agent: { name: 'good' } as never });
      else reply({ t: 'res', id: m.id, ok: true, result: [{ id: 'x1', command: 'sh', state: 'running' } as SessionInfo] });
    },
    onMessage: (h) => (receive = h),
    onClose: () => {},
    close: () => {},
  };
}

function proxy(): RemoteProxy {
  const peers = [SILENT, GOOD];
  // Only what the proxy uses of the community.
  const community = {
    id: 'h'.repeat(64),
    connectedPeers: () => peers,
    resolve: (ref: string) => ({ ...peers.find((p) => p.name === ref)! }),
    isSelf: () => false,
    onPeerLink: () => () => {},
    channelsFor: (id: string) => ({ openClient: (label: string) => new ApiClient(transport(id === GOOD.id), label) }),
  } as unknown as Community;
  const conn = { label: 'test', send: () => {}, bufferedBytes: () => 0, whenDrained: (cb: () => void) => cb(), close: () => {} } as unknown as Connection;
  return new RemoteProxy(conn, community);
}

describe('a peer that never answers', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('vos ls --all: the others are listed, and it is named with the reason, after the timeout', async () => {
    const listing = proxy().sessionsByPeer(false);
    let settled = false;
    void listing.then(() => (settled = true));
    await vi.advanceTimersByTimeAsync(ANSWER_TIMEOUT_MS - 100);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    const result = await listing;
    expect(result.find((p) => p.peer.name === 'good')).toMatchObject({ problem: null, sessions: [{ id: `x1@${GOOD.id}` }] });
    expect(result.find((p) => p.peer.name === 'silent')).toMatchObject({ code: 'timeout', sessions: [], problem: expect.stringMatching(/silent did not answer within 10 s/) });
  });

  it('a request about one of its sessions fails with timeout', async () => {
    const p = proxy();
    const screen = p.forward('session.screen', { id: 'x' }, { session: 'x', peer: 'silent' });
    const failed = expect(screen).rejects.toMatchObject({ code: 'timeout' });
    await vi.advanceTimersByTimeAsync(ANSWER_TIMEOUT_MS + 100);
    await failed;
  });
});
