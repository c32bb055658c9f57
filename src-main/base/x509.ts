/**
 * A long-lived identity for an agent: a fresh key pair and a self-signed X.509 v3 certificate for
 * it, made with `node:crypto` alone.
 *
 * Why this file exists: agents authenticate each other with mutual TLS, and `node:tls` wants a
 * certificate, but Node can only generate keys and sign — it has no certificate builder. Rather
 * than depend on a package or shell out to openssl, this file carries a minimal DER writer (just the
 * ASN.1 types a certificate needs) and assembles the certificate of RFC 5280 §4.1 by hand.
 *
 * Algorithm: Ed25519 (RFC 8410: key and signature algorithm are both OID 1.3.101.112, with no
 * parameters). Checked by experiment: with Node 20.20 / OpenSSL 3.0.19, two `node:tls` endpoints
 * presenting such certificates complete a mutual TLS 1.3 handshake (server `requestCert: true`, both
 * sides `rejectUnauthorized: false`), each sees the other's certificate and data flows both ways.
 * Ed25519 keys are small, signing is deterministic (no nonce to get wrong) and there is no hash or
 * curve to choose, so ECDSA P-256 — the fallback had that failed — was not needed.
 */
import { X509Certificate, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

export interface SelfSignedIdentity {
  /** The private key, PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). */
  keyPem: string;
  /** The certificate, PEM ("-----BEGIN CERTIFICATE-----", 64-column base64). */
  certPem: string;
  /** The same certificate, DER. */
  certDer: Buffer;
}

/** The upper bound of a commonName, in characters (RFC 5280, ub-common-name). */
const MAX_COMMON_NAME = 64;
const DAY_MS = 24 * 60 * 60 * 1000;

const OID_ED25519 = '1.3.101.112';
const OID_COMMON_NAME = '2.5.4.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

// --- A minimal DER writer (X.690): only what a certificate needs. --------------------------------

/** The length octets: short form below 128, else 0x80|n followed by n big-endian bytes. */
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One tag-length-value element. */
function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

/** A non-negative INTEGER from its unsigned big-endian bytes (minimal, with a 0x00 if the top bit is set). */
function integer(unsigned: Buffer): Buffer {
  let start = 0;
  while (start < unsigned.length - 1 && unsigned[start] === 0) start++;
  const body = unsigned.subarray(start);
  return tlv(0x02, body.length > 0 && body[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body);
}

/** An OBJECT IDENTIFIER from its dotted form: 40*a+b, then each arc in base 128, high bit = "more". */
function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const first = arcs[0]! * 40 + arcs[1]!;
  const bytes: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    const chunk = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) chunk.unshift(0x80 | (rest & 0x7f));
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function sequence(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

/** A SET with one member (DER would otherwise require sorting the members). */
function set(item: Buffer): Buffer {
  return tlv(0x31, item);
}

/** `[n] EXPLICIT`: a context-specific constructed wrapper. */
function explicit(n: number, inner: Buffer): Buffer {
  return tlv(0xa0 | n, inner);
}

function boolean(value: boolean): Buffer {
  return tlv(0x01, Buffer.from([value ? 0xff : 0x00]));
}

function utf8String(text: string): Buffer {
  return tlv(0x0c, Buffer.from(text, 'utf8'));
}

function octetString(content: Buffer): Buffer {
  return tlv(0x04, content);
}

/** A BIT STRING; the first content octet counts the unused bits in the last byte. */
function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/** A certificate time (RFC 5280 §4.1.2.5): UTCTime up to 2049, GeneralizedTime from 2050, seconds, 'Z'. */
function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const two = (n: number): string => String(n).padStart(2, '0');
  const rest = [date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
    .map(two)
    .join('');
  if (year < 2050) return tlv(0x17, Buffer.from(`${two(year % 100)}${rest}Z`, 'ascii'));
  return tlv(0x18, Buffer.from(`${String(year).padStart(4, '0')}${rest}Z`, 'ascii'));
}

// --- The certificate. -----------------------------------------------------------------------------

/** A Name with a single RDN: CN=<commonName>. */
function name(commonName: string): Buffer {
  return sequence(set(sequence(oid(OID_COMMON_NAME), utf8String(commonName))));
}

/** An Extension: extnID, critical, and the DER of its value wrapped in an OCTET STRING. */
function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function checkCommonName(commonName: string): void {
  if (typeof commonName !== 'string' || commonName.length === 0) {
    throw new Error('x509: the common name must be a non-empty string');
  }
  const characters = [...commonName].length;
  if (characters > MAX_COMMON_NAME) {
    throw new Error(`x509: the common name is ${characters} characters long; at most ${MAX_COMMON_NAME} are allowed`);
  }
  if (Buffer.from(commonName, 'utf8').toString('utf8') !== commonName) {
    throw new Error('x509: the common name is not valid Unicode (it contains a lone surrogate)');
  }
}

/** commonName goes in subject and issuer; validity from now - 1 day to now + `years` (default 30). */
export function createSelfSignedIdentity(commonName: string, options?: { years?: number }): SelfSignedIdentity {
  checkCommonName(commonName);
  const years = options?.years ?? 30;
  if (!Number.isInteger(years) || years < 1 || years > 1000) {
    throw new Error(`x509: the validity must be a whole number of years from 1 to 1000, not ${years}`);
  }

  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const now = Date.now();
  const notBefore = new Date(now - DAY_MS);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years);

  // 16 random bytes, top bit cleared (positive) and the next one set (so exactly 16 octets, never 0).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;

  const algorithm = sequence(oid(OID_ED25519)); // RFC 8410: parameters absent
  const subject = name(commonName);
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // version v3
    integer(serial),
    algorithm,
    subject, // issuer: self-signed
    sequence(time(notBefore), time(notAfter)),
    subject,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(
      3,
      sequence(
        // basicConstraints: an empty SEQUENCE, since cA DEFAULT FALSE is omitted in DER.
        extension(OID_BASIC_CONSTRAINTS, true, sequence()),
        // keyUsage: bit 0 (digitalSignature) alone; trailing zero bits dropped, so 7 unused.
        extension(OID_KEY_USAGE, true, bitString(Buffer.from([0x80]), 7)),
      ),
    ),
  );
  const certDer = sequence(tbs, algorithm, bitString(sign(null, tbs, privateKey)));

  // Parse once: a certificate that Node cannot read back is a bug here, better found now.
  new X509Certificate(certDer);

  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certPem: toPem('CERTIFICATE', certDer),
    certDer,
  };
}
