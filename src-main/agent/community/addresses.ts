/** HOST:PORT as people type it (`10.0.0.2:47470`, `[fe80::1]:47470`, `laptop.local`). */
import { VosError } from '../../api/errors.js';

/** Where agents listen for and dial their peers unless told otherwise. */
export const DEFAULT_PEER_PORT = 47470;

/** `anyPort`: port 0 is allowed (a listening address: any free port). */
export function parseHostPort(text: string, defaultPort: number, anyPort = false): { host: string; port: number } {
  const t = text.trim();
  let host: string;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (v6) {
    host = v6[1]!;
    port = v6[2];
  } else if ((t.match(/:/g) ?? []).length > 1) {
    host = t; // a bare IPv6 address, no port
  } else {
    const i = t.lastIndexOf(':');
    host = i >= 0 ? t.slice(0, i) : t;
    port = i >= 0 ? t.slice(i + 1) : undefined;
  }
  if (!host || /[\s/]/.test(host)) throw new VosError('invalid_params', `"${text}" is not HOST:PORT`);
  const n = port === undefined ? defaultPort : Number(port);
  const min = anyPort ? 0 : 1;
  if (!Number.isInteger(n) || n < min || n > 65535) throw new VosError('invalid_params', `"${text}": the port must be a number from ${min} to 65535`);
  return { host, port: n };
}

export function formatHostPort(host: string, port: number): string {
  const h = host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}
