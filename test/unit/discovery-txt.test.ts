/** What an mDNS answer says about a machine is cleaned on arrival, like a HELLO. */
import type { Service } from 'bonjour-service';
import { describe, expect, it } from 'vitest';
import { toPeer } from '../../src-main/agent/community/discovery.js';

describe('mDNS TXT', () => {
  it('takes a name without escapes, control or bidi characters, and nothing it did not ask for', () => {
    const service = {
      name: 'vos-x',
      fqdn: 'vos-x._vos._tcp.local',
      port: 47470,
      addresses: ['10.0.0.7'],
      txt: { id: 'c'.repeat(64), name: 'ma\x1b]0;t\x07l\x1b[2J\u202elory\nx', version: '1\x9b31m', os: 'Linux', arch: 'x64', kernel: '6.1', load: '0.5' },
    } as unknown as Service;
    const p = toPeer(service)!;
    expect(p).toEqual({ id: 'c'.repeat(64), name: 'mallory x', version: '1', os: 'Linux', arch: 'x64', addresses: ['10.0.0.7:47470'] });
  });
});
