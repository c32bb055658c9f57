/**
 * The two ways the renderer reaches its agent, behind one interface (api/client's
 * MessageTransport): the Electron preload bridge, or a WebSocket to the agent's web mode.
 */
import type { MessageTransport } from '../../../src-main/api/client';
import { VosError } from '../../../src-main/api/errors';
import type { AgentMessage } from '../../../src-main/api/protocol';
import type { VosBridge } from '../../../src-main/api/bridge';

const TOKEN_KEY = 'vos.token';

/** The web-mode token: from the address (then removed from it, so it is not shared by accident). */
export function takeToken(): string | null {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    window.history.replaceState(null, '', url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function bridgeTransport(bridge: VosBridge): MessageTransport {
  let closeHandler: ((reason: VosError | null) => void) | null = null;
  bridge.connect();
  return {
    send: (m) => bridge.send(m),
    onMessage: (h) =>
      bridge.onMessage((m: AgentMessage) => {
        if (m.t === 'error' && m.error.code === 'connection_closed') closeHandler?.(VosError.fromPayload(m.error));
        else h(m);
      }),
    onClose: (h) => {
      closeHandler = h;
    },
    close: () => {},
  };
}

export function webSocketTransport(token: string): MessageTransport {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${window.location.host}/api?token=${encodeURIComponent(token)}`);
  const queue: string[] = [];
  let handler: ((m: AgentMessage) => void) | null = null;
  let closeHandler: ((reason: VosError | null) => void) | null = null;
  ws.addEventListener('open', () => {
    for (const m of queue.splice(0)) ws.send(m);
  });
  ws.addEventListener('message', (e) => {
    if (typeof e.data === 'string') handler?.(JSON.parse(e.data) as AgentMessage);
  });
  ws.addEventListener('close', (e) => {
    closeHandler?.(new VosError('connection_closed', e.reason || 'the connection to the agent closed'));
  });
  return {
    send: (m) => {
      const text = JSON.stringify(m);
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
      else queue.push(text);
    },
    onMessage: (h) => {
      handler = h;
    },
    onClose: (h) => {
      closeHandler = h;
    },
    close: () => ws.close(),
  };
}

export type TokenCheck = 'accepted' | 'refused' | 'unreachable';

/**
 * Asks the agent at this page's address whether it takes this token (a refused WebSocket does
 * not say why): `refused` means a wrong or stale token, `unreachable` that no agent answers.
 */
export async function checkToken(token: string): Promise<TokenCheck> {
  try {
    const res = await fetch('/api', { headers: { 'X-Vos-Token': token }, cache: 'no-store' });
    if (res.status === 204) return 'accepted';
    return res.status === 403 ? 'refused' : 'unreachable';
  } catch {
    return 'unreachable';
  }
}
