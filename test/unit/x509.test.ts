import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { type TLSSocket, connect, createServer } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { createSelfSignedIdentity } from '../../src-main/base/x509.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Resolves with exactly `n` bytes read from `socket`, however they are chunked. */
function readBytes(socket: TLSSocket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= n) done(null);
    };
    const onEnd = (): void => done(new Error(`stream ended after ${have} of ${n} bytes`));
    const done = (error: Error | null): void => {
      socket.off('data', onData).off('end', onEnd).off('error', done);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    socket.on('data', onData).on('end', onEnd).on('error', done);
  });
}

describe('self-signed identity', () => {
  it('makes a certificate Node parses, with the right names, validity, key and extensions', () => {
    const before = Date.now();
    const id = createSelfSignedIdentity('agent-7f3a');
    const after = Date.now();
    const cert = new X509Certificate(id.certPem);

    expect(cert.subject).toBe('CN=agent-7f3a');
    expect(cert.issuer).toBe('CN=agent-7f3a');
    const validFrom = Date.parse(cert.validFrom);
    const validTo = Date.parse(cert.validTo);
    expect(validFrom).toBeLessThanOrEqual(before);
    expect(validTo).toBeGreaterThanOrEqual(after);
    // now - 1 day (to the second) .. now + 30 years, which lands past 2049: GeneralizedTime.
    expect(validFrom).toBeGreaterThanOrEqual(Math.floor((before - DAY_MS) / 1000) * 1000);
    expect(validFrom).toBeLessThanOrEqual(after - DAY_MS);
    const thirtyYears = new Date(before);
    thirtyYears.setUTCFullYear(thirtyYears.getUTCFullYear() + 30);
    expect(Math.abs(validTo - thirtyYears.getTime())).toBeLessThan(5_000);

    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('ed25519');
    const derived = createPublicKey(createPrivateKey(id.keyPem));
    expect(cert.publicKey.export({ type: 'spki', format: 'der' })).toEqual(derived.export({ type: 'spki', format: 'der' }));
    expect(cert.raw.equals(id.certDer)).toBe(true);
    expect(cert.ca).toBe(false);

    expect(id.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const pemLines = id.certPem.trimEnd().split('\n');
    expect(pemLines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(pemLines.at(-1)).toBe('-----END CERTIFICATE-----');
    const body = pemLines.slice(1, -1);
    expect(body.slice(0, -1).every((line) => line.length === 64)).toBe(true);
    expect(body.at(-1)!.length).toBeGreaterThan(0);
    expect(body.at(-1)!.length).toBeLessThanOrEqual(64);
    expect(Buffer.from(body.join(''), 'base64')).toEqual(id.certDer);
  });

  it('uses UTCTime before 2050 and GeneralizedTime from 2050 on', () => {
    for (const years of [1, 40]) {
      const before = new Date();
      const cert = new X509Certificate(createSelfSignedIdentity('agent', { years }).certDer);
      const validTo = new Date(cert.validTo);
      // A four-digit year squeezed into UTCTime would read back a century early.
      expect(validTo.getUTCFullYear()).toBe(before.getUTCFullYear() + years);
    }
  });

  it('lets two identities make a mutual TLS handshake and exchange bytes', async () => {
    const a = createSelfSignedIdentity('agent-a');
    const b = createSelfSignedIdentity('agent-b');
    const server = createServer({ key: b.keyPem, cert: b.certPem, requestCert: true, rejectUnauthorized: false });
    let client: TLSSocket | undefined;
    let accepted: TLSSocket | undefined;
    try {
      const serverSide = new Promise<TLSSocket>((resolve, reject) => {
        server.once('secureConnection', resolve);
        server.once('tlsClientError', reject);
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;

      client = connect({ host: '127.0.0.1', port, key: a.keyPem, cert: a.certPem, rejectUnauthorized: false });
      await once(client, 'secureConnect');
      accepted = await serverSide;

      expect(client.getProtocol()).toBe('TLSv1.3');
      expect(client.getPeerCertificate().raw.equals(b.certDer)).toBe(true);
      expect(accepted.getPeerCertificate().raw.equals(a.certDer)).toBe(true);

      const toServer = readBytes(accepted, 4);
      client.write('ping');
      expect((await toServer).toString()).toBe('ping');
      const toClient = readBytes(client, 4);
      accepted.write('pong');
      expect((await toClient).toString()).toBe('pong');
    } finally {
      client?.destroy();
      accepted?.destroy();
      if (server.listening) {
        const closed = once(server, 'close');
        server.close();
        await closed;
      }
    }
  });

  it('refuses bad common names with a clear message', () => {
    expect(() => createSelfSignedIdentity('')).toThrow(/common name must be a non-empty string/);
    expect(() => createSelfSignedIdentity('x'.repeat(65))).toThrow(/65 characters long; at most 64/);
    expect(() => createSelfSignedIdentity('agent-\ud800')).toThrow(/lone surrogate/);
    // The limit counts characters, not bytes.
    expect(new X509Certificate(createSelfSignedIdentity('x'.repeat(64)).certDer).subject).toBe(`CN=${'x'.repeat(64)}`);
    expect(new X509Certificate(createSelfSignedIdentity('é'.repeat(64)).certDer).subject).toBe(`CN=${'é'.repeat(64)}`);
  });

  it('refuses a validity that is not a whole number of years', () => {
    for (const years of [0, -1, 1.5, Number.NaN]) {
      expect(() => createSelfSignedIdentity('agent', { years })).toThrow(/whole number of years/);
    }
  });

  it('gives each certificate its own random, positive, 16-byte serial number', () => {
    const serials = Array.from({ length: 2 }, () => new X509Certificate(createSelfSignedIdentity('agent').certDer).serialNumber);
    expect(serials[0]).not.toBe(serials[1]);
    for (const serial of serials) expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/);
  });
});
