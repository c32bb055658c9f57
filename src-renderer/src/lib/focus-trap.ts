/**
 * What a modal dialog does with the keyboard focus: takes it when it opens (the element marked
 * `data-autofocus`, else the first focusable one), keeps Tab and Shift+Tab inside, closes on
 * Escape, and gives the focus back when it closes: to what had it before if that is still on
 * the page, else to the terminal (never to whatever button took the place of the one clicked:
 * "Unpair" after pairing).
 */
const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), a[href], [tabindex]:not([tabindex="-1"])';

export function focusTrap(node: HTMLElement, onEscape: () => void): { destroy(): void } {
  const before = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const focusables = (): HTMLElement[] => [...node.querySelectorAll<HTMLElement>(FOCUSABLE)];
  const first = node.querySelector<HTMLElement>('[data-autofocus]') ?? focusables()[0];
  first?.focus();
  const onKey = (e: KeyboardEvent): void => {
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
      queueMicrotask(() => {
        const active = document.activeElement;
        if (active && active !== document.body && active.isConnected) return; // someone put it somewhere already
        if (before?.isConnected && !node.contains(before)) before.focus();
        else document.querySelector<HTMLElement>('.xterm-helper-textarea')?.focus();
      });
    },
  };
}
