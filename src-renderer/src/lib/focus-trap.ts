/**
 * What a modal dialog does with the keyboard focus: takes it when it opens (the element marked
 * `data-autofocus`, else the first focusable one), keeps it inside (Tab and Shift+Tab go round;
 * focus that moves out, such as a terminal that appears behind the dialog and focuses itself,
 * is brought back), closes on Escape, and gives the focus back when it closes: to what had it
 * before if that is still on the page, else to the terminal (never to whatever button took the
 * place of the one clicked: "Unpair" after pairing).
 */
const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), a[href], [tabindex]:not([tabindex="-1"])';

/** The open dialogs, newest last: only the newest keeps the focus (two would take it in turns). */
const openTraps: HTMLElement[] = [];

export function focusTrap(node: HTMLElement, onEscape: () => void): { destroy(): void } {
  const before = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const focusables = (): HTMLElement[] => [...node.querySelectorAll<HTMLElement>(FOCUSABLE)];
  const first = node.querySelector<HTMLElement>('[data-autofocus]') ?? focusables()[0];
  openTraps.push(node);
  first?.focus();
  let lastInside: HTMLElement | undefined = first;
  const onFocusIn = (e: FocusEvent): void => {
    if (openTraps[openTraps.length - 1] !== node) return;
    if (e.target instanceof HTMLElement && node.contains(e.target)) {
      lastInside = e.target;
      return;
    }
    (lastInside?.isConnected && node.contains(lastInside) ? lastInside : focusables()[0])?.focus();
  };
  document.addEventListener('focusin', onFocusIn, true);
  const onKey = (e: KeyboardEvent): void => {
    if (openTraps[openTraps.length - 1] !== node) return; // the newest dialog's keys
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      onEscape();
      return;
    }
    if (e.key !== 'Tab') return;
    const all = focusables();
    if (all.length === 0) return;
    const i = all.indexOf(document.activeElement as HTMLElement);
    const next = e.shiftKey ? (i <= 0 ? all.length - 1 : i - 1) : i === all.length - 1 ? 0 : i + 1;
    e.preventDefault();
    all[next]!.focus();
  };
  // On the document, in the capture phase: before the terminal (which takes Escape) sees it.
  document.addEventListener('keydown', onKey, true);
  return {
    destroy() {
      document.removeEventListener('keydown', onKey, true);
      document.removeEventListener('focusin', onFocusIn, true);
      const at = openTraps.indexOf(node);
      if (at >= 0) openTraps.splice(at, 1);
      queueMicrotask(() => {
        const active = document.activeElement;
        if (active && active !== document.body && active.isConnected) return; // someone put it somewhere already
        if (before?.isConnected && !node.contains(before)) before.focus();
        else document.querySelector<HTMLElement>('.xterm-helper-textarea')?.focus();
      });
    },
  };
}
