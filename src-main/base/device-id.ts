/**
 * A machine's identity in the community is its certificate: the device id is the SHA-256 of the
 * certificate's DER bytes (as Syncthing does), so an id cannot be claimed without the key. It is
 * shown to people in a short form: the first 60 bits in base32, as XXXX-XXXX-XXXX.
 * (The pairing code is in pairing-sas.ts.)
 */
import { createHash } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** The device id: 64 lowercase hex digits. */
export function deviceIdOf(certDer: Uint8Array): string {
  return createHash('sha256').update(certDer).digest('hex');
}

/** XXXX-XXXX-XXXX: 12 base32 characters of the id (60 bits), for people. */
export function shortDeviceId(id: string): string {
  const bytes = Buffer.from(id.slice(0, 16), 'hex');
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 12) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return `${out.slice(0, 4)}-${out.slice(4, 8)}-${out.slice(8, 12)}`;
}

/** True for a string that is a full device id. */
export function isDeviceId(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

/** Accepts "123456", "123 456" or "123-456". */
export function normalizeCode(code: string): string {
  return code.replace(/[\s-]/g, '');
}
