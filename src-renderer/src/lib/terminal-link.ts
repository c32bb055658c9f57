/**
 * Binds an xterm.js terminal in the page to one session of the agent: attach (the snapshot
 * first, then live output), keys and size back to the agent, detach on dispose.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import type { ApiClient } from '../../../src-main/api/client';
import type { ApiEvent } from '../../../src-main/api/protocol';

export interface TerminalLink {
  focus(): void;
  /** Off: keys are not sent (its session cannot be reached). */
  setInputEnabled(enabled: boolean): void;
  dispose(): void;
}

export function linkTerminal(host: HTMLElement, client: ApiClient, id: string, onError: (message: string) => void): TerminalLink {
  const term = new Terminal({
    fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, monospace',
    fontSize: 14,
    cursorBlink: true,
    scrollback: 5000,
    theme: { background: '#0f1115', foreground: '#d7dae0' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();

  let ready = false;
  let disposed = false;
  const early: ApiEvent[] = [];
  const handle = (e: ApiEvent): void => {
    if (!('id' in e) || e.id !== id) return;
    if (!ready) {
      early.push(e);
      return;
    }
    if (e.event === 'session.output') term.write(e.data);
    else if (e.event === 'session.resync') {
      term.reset();
      term.write(e.snapshot);
    }
  };
  const offEvents = client.onEvent(handle);
  const report = (err: Error): void => {
    if (!disposed) onError(err.message);
  };

  client.request('session.attach', { id, cols: term.cols, rows: term.rows }).then(({ snapshot }) => {
    if (disposed) return;
    term.write(snapshot);
    ready = true;
    for (const e of early.splice(0)) handle(e);
  }, report);

  const onData = term.onData((data) => {
    client.request('session.input', { id, data }).catch(report);
  });
  const onResize = term.onResize(({ cols, rows }) => {
    client.request('session.resize', { id, cols, rows }).catch(() => {
      /* an ended session keeps its size */
    });
  });
  const observer = new ResizeObserver(() => {
    if (host.clientWidth > 0 && host.clientHeight > 0) fit.fit();
  });
  observer.observe(host);

  return {
    focus: () => term.focus(),
    setInputEnabled: (enabled) => {
      term.options.disableStdin = !enabled;
    },
    dispose: () => {
      disposed = true;
      observer.disconnect();
      onData.dispose();
      onResize.dispose();
      offEvents();
      if (!client.closed) client.request('session.detach', { id }).catch(() => {});
      term.dispose();
    },
  };
}
