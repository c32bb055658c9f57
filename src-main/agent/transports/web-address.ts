/**
 * The web UI's port and token, kept in the state directory (`web.json`, 0600) so that they
 * survive a restart of the agent: an open page finds the next agent of the same state directory
 * at the same address, with the same token, and reconnects by itself. A file that is missing,
 * unreadable or malformed is replaced by a fresh token (and any free port); it holds nothing
 * else. Only the user can read it (the state directory is 0700 too): the token gives the same
 * rights as the socket beside it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePrivateFile } from '../../base/state-dir.js';

export interface WebAddress {
  /** 0: none yet (any free port). */
  port: number;
  token: string;
}

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{32}$/;

export function webAddressPath(home: string): string {
  return join(home, 'web.json');
}

export function newWebToken(): string {
  return randomBytes(24).toString('base64url');
}

/** The remembered port and token, or a fresh token and port 0 when there is none (or it is bad). */
export function loadWebAddress(home: string): WebAddress {
  try {
    const value = JSON.parse(readFileSync(webAddressPath(home), 'utf8')) as Partial<WebAddress>;
    const port = value.port;
    if (typeof value.token === 'string' && TOKEN_PATTERN.test(value.token) && typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535) {
      return { port, token: value.token };
    }
  } catch {
    /* none yet, or unreadable: a new one */
  }
  return { port: 0, token: newWebToken() };
}

export function saveWebAddress(home: string, address: WebAddress): void {
  writePrivateFile(webAddressPath(home), JSON.stringify(address) + '\n');
}
