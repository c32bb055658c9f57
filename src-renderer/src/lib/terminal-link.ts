/**
 * Binds an xterm.js terminal in the page to one session of the agent: attach (the snapshot
 * first, then live output), keys and size back to the agent, detach on dispose.
 *
 * Size (as tmux's "latest" window size): the session has the size of the viewer that last typed
 * or resized; watching does not take it. So the terminal here always has the session's size
 * (`follow`), letterboxed in a bigger view or scrolled in a smaller one, and this view's own
 * size is sent only when the user acts here: the view resized or zoomed, `takeSize` (a Fit
 * button), or typing (the agent then gives the session the size this view last said). The keys that
 * are the app's (terminal-keys.ts) copy, paste, find and zoom instead of reaching the program;
 * web links open in the browser; the program's title (OSC 0/2) is passed up.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { SearchAddon, type ISearchOptions } from '@xterm/addon-search';
import { WebLinksAddon } from '@xterm/addon-web-links';
import type { ApiClient } from '../../../src-main/api/client';
import type { ApiEvent } from '../../../src-main/api/protocol';
import { terminalAction } from './terminal-keys';

export interface TerminalLink {
  focus(): void;
  /** Off: keys are not sent (its session cannot be reached). */
  setInputEnabled(enabled: boolean): void;
  setFontSize(size: number): void;
  /** The session's size now (its info changed): the terminal takes it. `viewers`: how many watch it. */
  follow(cols: number, rows: number, viewers?: number): void;
  /** Gives the session this view's size. */
  takeSize(): void;
  /** The next (or previous) match of `query` in the screen and scrollback, selected and shown. */
  find(query: string, backwards: boolean, incremental?: boolean): void;
  /** Find is closed: no more highlights. */
  endFind(): void;
  dispose(): void;
}

export interface TerminalLinkOptions {
  fontSize: number;
  /** Read each time text is selected. */
  copyOnSelect: () => boolean;
  onError(message: string): void;
  /** Ctrl+Shift+F. */
  onFindRequest(): void;
  onZoom(step: -1 | 0 | 1): void;
  /** The program set its title (OSC 0 or 2). */
  onTitle(title: string): void;
  /** Matches of the current find (count 0: none; index -1: none selected). */
  onFindResults(index: number, count: number): void;
  /** The session's size differs from what fits this view (null: it fits). */
  onSizeMismatch(fits: { cols: number; rows: number } | null): void;
}

/** How matches look (the decorations are what makes the addon count them). */
const FIND_OPTIONS: ISearchOptions = {
  decorations: {
    matchBackground: '#4b5563',
    matchOverviewRuler: '#9ca3af',
    activeMatchBackground: '#b45309',
    activeMatchColorOverviewRuler: '#f59e0b',
  },
};

/** Only web links leave the app, in a new window of the browser (or the desktop's browser). */
function openLink(uri: string): void {
  if (!/^https?:\/\//i.test(uri)) return;
  window.open(uri, '_blank', 'noopener,noreferrer');
}

export function linkTerminal(host: HTMLElement, client: ApiClient, id: string, options: TerminalLinkOptions): TerminalLink {
  const onError = options.onError;
  const term = new Terminal({
    fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, monospace',
    fontSize: options.fontSize,
    cursorBlink: true,
    scrollback: 5000,
    allowProposedApi: true, // the search addon's match decorations
    theme: { background: '#0f1115', foreground: '#d7dae0' },
  });
  const fit = new FitAddon();
  const search = new SearchAddon();
  term.loadAddon(fit);
  term.loadAddon(search);
  term.loadAddon(new WebLinksAddon((_event, uri) => openLink(uri)));
  term.open(host);
  fit.fit();
  const onResults = search.onDidChangeResults(({ resultIndex, resultCount }) => options.onFindResults(resultIndex, resultCount));
  const onTitle = term.onTitleChange((title) => options.onTitle(title));

  const copy = (text: string): void => {
    if (!text) return;
    navigator.clipboard.writeText(text).catch(() => onError('Could not copy: this page may not use the clipboard (allow it, or use the browser’s copy).'));
  };
  /** When the user last pressed a key here or pasted (what onData sends then is typing). */
  let keyedAt = -Infinity;
  // The app's keys: taken on keydown, kept from the program on every event of that press.
  term.attachCustomKeyEventHandler((e) => {
    // A lone Alt sends the program nothing; marked as handled, it does not reach the window
    // either, where Electron would focus its menu bar (and a browser its own) when it is let go.
    if (e.key === 'Alt') {
      e.preventDefault();
      return true;
    }
    const action = terminalAction(e, term.hasSelection());
    if (!action) {
      if (e.type === 'keydown') keyedAt = performance.now();
      return true;
    }
    if (e.type !== 'keydown') return false;
    e.preventDefault();
    if (action === 'copy') {
      copy(term.getSelection());
      if (!e.shiftKey) term.clearSelection(); // the next Ctrl+C is ^C again
    } else if (action === 'paste') {
      navigator.clipboard.readText().then(
        (text) => {
          keyedAt = performance.now();
          if (text) term.paste(text);
        },
        () => onError('Could not paste: this page may not read the clipboard (allow it, or use Shift+Insert).'),
      );
    } else if (action === 'find') {
      options.onFindRequest();
    } else {
      options.onZoom(action === 'zoom-in' ? 1 : action === 'zoom-out' ? -1 : 0);
    }
    return false;
  });
  // Copy on selection (a setting): once the selection has settled.
  let selectionTimer: ReturnType<typeof setTimeout> | undefined;
  const onSelection = term.onSelectionChange(() => {
    clearTimeout(selectionTimer);
    if (!options.copyOnSelect()) return;
    selectionTimer = setTimeout(() => {
      if (term.hasSelection()) copy(term.getSelection());
    }, 150);
  });

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

  /**
   * What fits this view (null: it is not laid out), as if it had no scrollbars: letterboxed, the
   * view scrolls, and the scrollbars' room would otherwise count as a row and a column less.
   */
  const fits = (): { cols: number; rows: number } | null => {
    const overflow = host.style.overflow;
    host.style.overflow = 'hidden';
    const d = fit.proposeDimensions();
    host.style.overflow = overflow;
    return d && d.cols > 0 && d.rows > 0 && Number.isFinite(d.cols) && Number.isFinite(d.rows) ? { cols: d.cols, rows: d.rows } : null;
  };
  /** No other viewer to leave the size to (then a view that does not fit takes it). */
  let alone = true;
  /**
   * The size this view gave the session last, while it is still the session's size: this view
   * is the active viewer, and what fits here is the session's size. `confirmed` once the agent
   * has applied it (a different size seen after that is another viewer's; before, an old one).
   */
  let owned: { cols: number; rows: number; confirmed: boolean } | null = null;
  const sayMismatch = (): void => {
    const f = fits();
    const differs = f !== null && (f.cols !== term.cols || f.rows !== term.rows);
    // Alone or the active viewer, it takes what fits: the font measured again (loaded, zoomed:
    // a fraction of a pixel is a column) is no reason for a letterbox nobody asked for.
    if (differs && ready && (alone || owned)) takeSize();
    else options.onSizeMismatch(differs ? f : null);
  };
  const follow = (cols: number, rows: number, viewers?: number): void => {
    if (viewers !== undefined) alone = viewers <= 1;
    if (owned?.confirmed && (cols !== owned.cols || rows !== owned.rows)) owned = null; // another viewer took it
    if (cols > 0 && rows > 0 && (cols !== term.cols || rows !== term.rows)) term.resize(cols, rows);
    sayMismatch();
  };
  /** The user acted here: the session takes this view's size. */
  const takeSize = (): void => {
    const f = fits();
    if (!f) return;
    const mine = { ...f, confirmed: false };
    owned = mine;
    follow(f.cols, f.rows);
    client.request('session.resize', { id, cols: f.cols, rows: f.rows }).then(
      () => {
        if (owned === mine) mine.confirmed = true;
      },
      () => {
        /* an ended session keeps its size */
      },
    );
  };
  // A font loaded late measures other cells: what fits may change without any resize.
  const onFonts = (): void => {
    if (!disposed && ready) sayMismatch();
  };
  document.fonts?.addEventListener('loadingdone', onFonts);

  const first = fits();
  client.request('session.attach', { id, ...(first ?? { cols: term.cols, rows: term.rows }) }).then(({ session, snapshot }) => {
    if (disposed) return;
    if (session.cols > 0 && session.rows > 0) term.resize(session.cols, session.rows); // the snapshot is drawn for its size
    term.write(snapshot);
    ready = true;
    follow(session.cols, session.rows, session.viewers);
    for (const e of early.splice(0)) handle(e);
  }, report);

  const onData = term.onData((data) => {
    // Typing takes the size: what fits now (the agent knows only what fitted at attach). Not
    // xterm's own answers to the program's questions, which a watching view sends too.
    if (!owned && ready && performance.now() - keyedAt < 500) takeSize();
    client.request('session.input', { id, data }).catch(report);
  });
  // The view's first layout is not an act of the user (attach said what fits); later changes are.
  let laidOut = false;
  const observer = new ResizeObserver(() => {
    if (host.clientWidth === 0 || host.clientHeight === 0) return;
    if (!laidOut) {
      laidOut = true;
      sayMismatch();
      return;
    }
    if (ready) takeSize();
  });
  observer.observe(host);

  return {
    focus: () => term.focus(),
    setInputEnabled: (enabled) => {
      term.options.disableStdin = !enabled;
    },
    setFontSize: (size) => {
      if (term.options.fontSize === size) return;
      term.options.fontSize = size;
      // Zoomed here: the user's act. xterm measures the new font over the next frames (its cell
      // width can move by a fraction of a pixel, which is a column in a wide view): the size is
      // taken again while what fits still changes, for a few frames.
      if (!ready) return;
      let frames = 0;
      const settle = (): void => {
        if (disposed) return;
        const f = fits();
        if (f && (f.cols !== term.cols || f.rows !== term.rows)) takeSize();
        if (++frames < 12) requestAnimationFrame(settle);
      };
      requestAnimationFrame(settle);
    },
    follow,
    takeSize,
    find: (query, backwards, incremental = false) => {
      if (!query) {
        search.clearDecorations();
        options.onFindResults(-1, 0);
        return;
      }
      const found = backwards
        ? search.findPrevious(query, FIND_OPTIONS)
        : search.findNext(query, { ...FIND_OPTIONS, incremental });
      if (!found) options.onFindResults(-1, 0);
    },
    endFind: () => {
      search.clearDecorations();
      term.clearSelection();
    },
    dispose: () => {
      disposed = true;
      clearTimeout(selectionTimer);
      observer.disconnect();
      document.fonts?.removeEventListener('loadingdone', onFonts);
      onData.dispose();
      onResults.dispose();
      onTitle.dispose();
      onSelection.dispose();
      offEvents();
      if (!client.closed) client.request('session.detach', { id }).catch(() => {});
      term.dispose();
    },
  };
}
