/**
 * What an agent says about itself depends on who asks: its owner's clients learn everything, a
 * paired machine (a peer channel) not the web UI's address and token (full local rights), the
 * state directory or the pid.
 */
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type AgentInfo, type AgentMessage } from '../../src-main/api/protocol.js';
import { ApiDispatcher, type AgentServices, type ConnectionPolicy } from '../../src-main/agent/api-dispatcher.js';
import type { Connection } from '../../src-main/agent/transports/connection.js';

const INFO: AgentInfo = {
  name: 'alpha',
  hostname: 'alpha-host',
  pid: 4242,
  version: '1.2.3',
  protocol: PROTOCOL_VERSION,
  home: '/home/user/.vos',
  id: 'a'.repeat(64),
  shortId: 'AAAA-AAAA-AAAA',
  listen: '10.0.0.1:47470',
  mdns: true,
  webUrl: 'http://127.0.0.1:8080/?token=secret-token',
};

/** Says hello and asks agent.info as `policy`; returns the hello's agent and the reply. */
async function ask(policy: ConnectionPolicy): Promise<{ hello: AgentInfo; info: AgentInfo }> {
  // The dispatcher needs nothing but info() for these two messages.
  const agent = { sessions: {}, community: null, migrations: null, info: () => ({ ...INFO }), log: () => {} } as unknown as AgentServices;
  const sent: AgentMessage[] = [];
  const conn: Connection = { label: 'test', send: (m) => sent.push(m), close: () => {}, bufferedBytes: () => 0, whenDrained: (cb) => cb() };
  const handle = new ApiDispatcher(agent).open(conn, policy);
  handle.receive({ t: 'hello', protocol: PROTOCOL_VERSION, client: 'test' });
  handle.receive({ t: 'req', id: 1, method: 'agent.info', params: {} });
  for (let i = 0; i < 10 && sent.length < 2; i++) await new Promise((r) => setImmediate(r));
  const hello = sent.find((m) => m.t === 'hello') as { agent: AgentInfo } | undefined;
  const res = sent.find((m) => m.t === 'res') as { ok: boolean; result: AgentInfo } | undefined;
  expect(res?.ok).toBe(true);
  return { hello: hello!.agent, info: res!.result };
}

describe('agent.info', () => {
  it('tells a local client everything', async () => {
    const { hello, info } = await ask({ kind: 'local' });
    expect(info).toEqual(INFO);
    expect(hello).toEqual(INFO);
  });

  it('tells a paired machine neither the web UI address nor its token, the state directory or the pid', async () => {
    const { hello, info } = await ask({ kind: 'peer', peer: { id: 'b'.repeat(64), name: 'beta' } });
    for (const seen of [hello, info]) {
      expect(seen).toMatchObject({ name: 'alpha', version: '1.2.3', protocol: PROTOCOL_VERSION, id: INFO.id, webUrl: null, home: '', pid: 0 });
      expect(JSON.stringify(seen)).not.toContain('secret-token');
      expect(JSON.stringify(seen)).not.toContain('/home/user');
    }
  });
});
