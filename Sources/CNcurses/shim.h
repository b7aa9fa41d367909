#ifndef REDIS_OPS_CNCURSES_SHIM_H
#define REDIS_OPS_CNCURSES_SHIM_H
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include <wchar.h>
#include <stdio.h>
#include <ncursesw/curses.h>

/* Swift 6 rejects C globals as shared mutable state; expose them through functions. */
static inline WINDOW *ro_stdscr(void) { return stdscr; }
static inline int ro_lines(void) { return LINES; }
static inline int ro_cols(void) { return COLS; }
static inline int ro_has_colors(void) { return has_colors(); }
static inline int ro_colors(void) { return COLORS; }
static inline attr_t ro_A_BOLD(void) { return A_BOLD; }
static inline attr_t ro_A_REVERSE(void) { return A_REVERSE; }
static inline attr_t ro_A_DIM(void) { return A_DIM; }
static inline attr_t ro_A_UNDERLINE(void) { return A_UNDERLINE; }
static inline attr_t ro_A_NORMAL(void) { return A_NORMAL; }
static inline int ro_color_pair(int n) { return (int)COLOR_PAIR(n); }
static inline FILE *ro_fdopen(int fd, const char *mode) { return fdopen(fd, mode); }
/* Draw one cell: a (possibly wide) character with attributes and a color pair. */
static inline int ro_put_cell(int y, int x, const wchar_t *wch, attr_t attrs, short pair) {
    cchar_t c;
    if (setcchar(&c, wch, attrs, pair, NULL) != OK) return ERR;
    return mvadd_wch(y, x, &c);
}
#endif
