/**
 * Text from another machine cannot drive the terminal it is shown in: escape sequences, control
 * and bidirectional characters go, and it is cut to a length.
 */
import { describe, expect, it } from 'vitest';
import { cleanLogText, cleanPeerText, PEER_NAME_MAX } from '../../src-main/base/peer-text.js';

describe('cleanPeerText', () => {
  it('removes OSC (title, clipboard), CSI (clear screen), bidi overrides and line breaks', () => {
    const evil = 'ev\x1b]0;owned\x07il\x1b]52;c;ZWNobyBoaQ==\x1b\\ \x1b[2J\x1b[Hcode 123456\u202egnp.exe\nnext';
    expect(cleanPeerText(evil)).toBe('evil code 123456gnp.exe next');
  });

  it('removes every C0, DEL, C1 and bidirectional control, C1 sequences included', () => {
    const controls = [...Array.from({ length: 0xa0 }, (_, i) => i).filter((i) => i < 0x20 || i >= 0x7f), 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x61c];
    for (const c of controls) expect(cleanPeerText(`a${String.fromCharCode(c)}`), `U+${c.toString(16)}`).toBe('a');
    expect(cleanPeerText('a\x00b\x7fc\x85d\u202ee\u2066f')).toBe('abcdef');
    expect(cleanPeerText('x\x9b2Jy\x9d0;title\x07z')).toBe('xyz');
  });

  it('keeps ordinary text, accents and emoji; cuts by characters, never half a pair', () => {
    expect(cleanPeerText('  Zoë’s laptop 🚀 ')).toBe('Zoë’s laptop 🚀');
    const long = '🚀'.repeat(100);
    expect(Array.from(cleanPeerText(long, PEER_NAME_MAX))).toHaveLength(PEER_NAME_MAX);
    expect(cleanPeerText(long, 3)).toBe('🚀🚀🚀');
    expect(cleanPeerText('a\ud800b')).toBe('ab');
    expect(cleanPeerText(42)).toBe('');
  });

  it('a log message keeps its lines, the later ones indented', () => {
    expect(cleanLogText('link from \x1b[31mred\x1b[0m\n2024-01-01T00:00:00Z paired with mallory')).toBe(
      'link from red\n  2024-01-01T00:00:00Z paired with mallory',
    );
  });
});

describe('what the CLI prints of machines', () => {
  it('cleans names and fields again, whatever the agent sent', async () => {
    const { peersTable } = await import('../../src-main/cli/format.js');
    const out = peersTable([
      {
        id: 'a'.repeat(64),
        shortId: 'AAAA-AAAA-AAAA',
        name: 'mal\x1b]0;t\x07lory\x1b[2J\u202e\nx',
        os: 'Linux\x1b[31m',
        arch: 'x64',
        kernel: '',
        version: '1',
        load: null,
        addresses: ['10.0.0.1:47470'],
        paired: false,
        online: true,
        lastSeen: null,
        link: 'up',
        warning: 'presents \x07another',
        pairing: null,
      },
    ]);
    expect(out).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    expect(out).toContain('mallory x');
  });
});

describe('sources of connections', () => {
  it('counts an IPv4 address (mapped or not) as one source, an IPv6 /64 as one', async () => {
    const { sourceOf } = await import('../../src-main/agent/community/unidentified.js');
    expect(sourceOf('10.1.2.3')).toBe('10.1.2.3');
    expect(sourceOf('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(sourceOf('2001:db8:1:2:aaaa::1')).toBe(sourceOf('2001:0db8:0001:0002:bbbb:cccc:dddd:eeee'));
    expect(sourceOf('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:db8:1:3::1')).not.toBe(sourceOf('2001:db8:1:2::1'));
    expect(sourceOf('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceOf('::1')).toBe('0:0:0:0::/64');
  });
});
