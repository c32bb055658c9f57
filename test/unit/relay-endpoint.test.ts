/**
 * The target's relay endpoint (agent/relay/relay-endpoint.ts) takes a connection only with the
 * hello of a restore it expects (its key, given to that restorer alone), over TCP on 127.0.0.1
 * or its Unix socket; anything else is closed. And the anchor's frames decode however the
 * stream is cut, refusing a frame longer than the anchor ever sends.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ANCHOR_DATA, ANCHOR_EOF, ANCHOR_MAX_DATA, AnchorFrameDecoder, encodeAnchorData, encodeAnchorFrame } from '../../src-main/agent/relay/anchor-frames.js';
import { RelayEndpoint } from '../../src-main/agent/relay/relay-endpoint.js';

function hello(key: string, object: number): Buffer {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(object);
  return Buffer.concat([Buffer.from('VOSRELAY'), Buffer.from(key, 'hex'), id]);
}

/** Resolves when the socket is closed by the other end (or errors). */
const closed = (s: Socket): Promise<void> => new Promise((resolve) => s.once('close', () => resolve()));

describe('relay endpoint', () => {
  let dir: string;
  let endpoint: RelayEndpoint;
  const logged: string[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vos-relay-'));
    endpoint = new RelayEndpoint(dir, (m) => logged.push(m));
  });
  afterEach(async () => {
    await endpoint.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hands over a connection that says an expected key, with its object id and the bytes after the hello; answers it first', async () => {
    let answered = Buffer.alloc(0);
    let client: Socket | null = null;
    const taken = new Promise<{ object: number; data: string }>((resolve, reject) => {
      endpoint
        .expect((object, socket) => {
          socket.once('data', (d: Buffer) => {
            socket.write('relayed');
            resolve({ object, data: d.toString() });
          });
          socket.resume();
        })
        .then(({ env }) => {
          expect(env.VOS_RELAY_PORT).toMatch(/^\d+$/);
          const s = connect(Number(env.VOS_RELAY_PORT), '127.0.0.1');
          client = s;
          s.on('data', (d: Buffer) => (answered = Buffer.concat([answered, d])));
          s.on('error', reject);
          // Cut in two: the hello may arrive in pieces, and bytes may follow it at once.
          const h = hello(env.VOS_RELAY_KEY!, 7);
          s.write(h.subarray(0, 5));
          setTimeout(() => s.write(Buffer.concat([h.subarray(5), Buffer.from('ssh-2.0')])), 20);
        }, reject);
    });
    expect(await taken).toEqual({ object: 7, data: 'ssh-2.0' });
    // The restorer reads one byte, the ACK (0x06), before it hands the socket to the program:
    // it comes before anything relayed.
    await new Promise<void>((resolve) => {
      const check = (): void => void (answered.length >= 8 ? resolve() : setTimeout(check, 10));
      check();
    });
    expect(answered.toString('latin1')).toBe('\x06relayed');
    (client as Socket | null)?.destroy();
  });

  it('takes a Unix stream connection the same way, on a socket only the user can reach', async () => {
    const taken = new Promise<number>((resolve, reject) => {
      endpoint.expect((object, socket) => {
        socket.destroy();
        resolve(object);
      }).then(({ env }) => {
        expect(statSync(env.VOS_RELAY_UNIX!).isSocket()).toBe(true);
        const s = connect(env.VOS_RELAY_UNIX!);
        s.on('error', reject);
        s.write(hello(env.VOS_RELAY_KEY!, 42));
      }, reject);
    });
    expect(await taken).toBe(42);
  });

  it('closes a connection with a wrong key, a wrong magic, or a key no longer expected', async () => {
    let handed = 0;
    const { env, cancel } = await endpoint.expect(() => handed++);
    const port = Number(env.VOS_RELAY_PORT);
    const wrongKey = hello('00'.repeat(16), 1);
    const wrongMagic = Buffer.concat([Buffer.from('NOTRELAY'), hello(env.VOS_RELAY_KEY!, 1).subarray(8)]);
    for (const h of [wrongKey, wrongMagic]) {
      const s = connect(port, '127.0.0.1');
      let answer = '';
      s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      s.on('error', () => {});
      s.write(h);
      await closed(s);
      expect(answer).toBe(''); // no ACK: the restorer fails the restore
    }
    cancel();
    const late = connect(port, '127.0.0.1');
    late.on('error', () => {});
    late.write(hello(env.VOS_RELAY_KEY!, 1));
    await closed(late);
    expect(handed).toBe(0);
    expect(logged.filter((m) => /without a known key/.test(m))).toHaveLength(3);
  });
});

describe('anchor frames', () => {
  it('decode however the stream is cut', () => {
    const big = Buffer.alloc(ANCHOR_MAX_DATA * 2 + 5, 7);
    const stream = Buffer.concat([...encodeAnchorData(3, big), encodeAnchorFrame(ANCHOR_EOF, 3)]);
    const d = new AnchorFrameDecoder();
    const frames = [];
    for (let at = 0; at < stream.length; at += 1000) frames.push(...d.push(stream.subarray(at, at + 1000)));
    expect(frames.map((f) => [f.type, f.conn, f.payload.length])).toEqual([
      [ANCHOR_DATA, 3, ANCHOR_MAX_DATA],
      [ANCHOR_DATA, 3, ANCHOR_MAX_DATA],
      [ANCHOR_DATA, 3, 5],
      [ANCHOR_EOF, 3, 0],
    ]);
    expect(Buffer.concat(frames.slice(0, 3).map((f) => f.payload)).equals(big)).toBe(true);
  });

  it('refuses a frame longer than the anchor sends', () => {
    const head = Buffer.alloc(9);
    head.writeUInt8(ANCHOR_DATA, 0);
    head.writeUInt32BE(ANCHOR_MAX_DATA + 1, 5);
    expect(() => new AnchorFrameDecoder().push(head)).toThrow(/frame of 65537 bytes/);
  });
});
