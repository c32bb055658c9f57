# A curses program (ncurses through Python) for test/runtime/restore-redraw.test.ts: prints the
# code of every key getch() returns, one per line (KEY_RESIZE is 410, KEY_DOWN 258), as an
# editor sees them: a resize handled in the middle of an escape sequence splits it (27, 410, ...).
import curses


def main(w):
    curses.noecho()
    w.keypad(True)
    w.addstr(0, 0, "keys ready")
    w.refresh()
    row = 1
    while True:
        k = w.getch()
        w.addstr(row % 20, 0, "key %d   " % k)
        w.refresh()
        row += 1
        if k == ord('q'):
            break


curses.wrapper(main)
