/**
 * This agent's long-lived identity: a key pair and a self-signed certificate in the state
 * directory (`identity/key.pem`, 0600, and `identity/cert.pem`), created on first start. Its
 * device id is the SHA-256 of the certificate. Losing the key means becoming a new machine to
 * every peer (they will refuse the new certificate under the old name until unpaired).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VosError } from '../../api/errors.js';
import { deviceIdOf, shortDeviceId } from '../../base/device-id.js';
import { ensurePrivateDir, writePrivateFile } from '../../base/state-dir.js';
import { createSelfSignedIdentity } from '../../base/x509.js';

export interface Identity {
  id: string;
  shortId: string;
  keyPem: string;
  certPem: string;
  certDer: Buffer;
}

export function loadOrCreateIdentity(home: string): Identity {
  const dir = join(home, 'identity');
  ensurePrivateDir(dir);
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  if (!existsSync(keyPath) || !existsSync(certPath)) {
    const made = createSelfSignedIdentity('vOS agent');
    writePrivateFile(keyPath, made.keyPem, { durable: true });
    writePrivateFile(certPath, made.certPem, { durable: true });
  }
  let keyPem: string;
  let certPem: string;
  let cert: X509Certificate;
  try {
    keyPem = readFileSync(keyPath, 'utf8');
    certPem = readFileSync(certPath, 'utf8');
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new VosError('unavailable', `cannot read this agent's identity in ${dir}: ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) {
    throw new VosError('unavailable', `${keyPath} is not the key of ${certPath}: restore the pair, or remove both to become a new machine`);
  }
  const id = deviceIdOf(cert.raw);
  return { id, shortId: shortDeviceId(id), keyPem, certPem, certDer: cert.raw };
}
