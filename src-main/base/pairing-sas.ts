/**
 * The pairing code as a short authentication string with commit-then-reveal (the shape of
 * Bluetooth numeric comparison and ZRTP). The requester draws a nonce and sends only its
 * commitment, H(nonce_R, id_R, id_S); the responder answers with its own nonce; the requester
 * reveals its nonce, which the responder checks against the commitment. The six digits are
 * derived from both nonces and both device ids (each id is the SHA-256 of the certificate its
 * side showed on the link), in the roles' order.
 *
 * Why: a code derived from the certificates alone let a machine in the middle try certificates
 * until both sides showed the same code (about 2,000 tries). Here it is bound to its nonce before
 * it sees the other side's, so it cannot steer the code: each attempt is one guess in 10^6.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Bytes of a pairing nonce (sent as 64 hex digits). */
export const NONCE_BYTES = 32;

/** A fresh nonce, as hex. */
export function pairingNonce(): string {
  return randomBytes(NONCE_BYTES).toString('hex');
}

/** True for 64 lowercase hex digits: a nonce, a commitment. */
export function isHex256(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

/** The requester's commitment to its nonce, bound to both device ids. */
export function pairingCommitment(requesterNonce: string, requesterId: string, responderId: string): string {
  return createHash('sha256')
    .update('vOS pairing v2 commit\0')
    .update(Buffer.from(requesterNonce, 'hex'))
    .update(Buffer.from(requesterId, 'hex'))
    .update(Buffer.from(responderId, 'hex'))
    .digest('hex');
}

/** Whether `nonce` is the one `commitment` was made to (in constant time). */
export function commitmentHolds(commitment: string, nonce: string, requesterId: string, responderId: string): boolean {
  if (!isHex256(commitment) || !isHex256(nonce)) return false;
  return timingSafeEqual(Buffer.from(commitment, 'hex'), Buffer.from(pairingCommitment(nonce, requesterId, responderId), 'hex'));
}

/** The six digits both sides show, from both ids and both nonces. */
export function pairingCode(requesterId: string, responderId: string, requesterNonce: string, responderNonce: string): string {
  const digest = createHash('sha256')
    .update('vOS pairing v2 code\0')
    .update(Buffer.from(requesterId, 'hex'))
    .update(Buffer.from(responderId, 'hex'))
    .update(Buffer.from(requesterNonce, 'hex'))
    .update(Buffer.from(responderNonce, 'hex'))
    .digest();
  // 48 bits modulo 10^6: the bias is below 1 in 10^8.
  return (digest.readUIntBE(0, 6) % 1_000_000).toString().padStart(6, '0');
}
