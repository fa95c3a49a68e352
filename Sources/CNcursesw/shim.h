#ifndef CNCURSESW_SHIM_H
#define CNCURSESW_SHIM_H
// The wide-character API (cchar_t, mvaddwstr, WACS_*) must be switched on before curses.h:
// SwiftPM drops pkg-config's -D_XOPEN_SOURCE, so it is set here.
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <locale.h>
#include <wchar.h>
#include <ncursesw/curses.h>
// Macros Swift cannot import, as functions.
static inline int shim_A_BOLD(void) { return (int)A_BOLD; }
static inline int shim_A_REVERSE(void) { return (int)A_REVERSE; }
static inline int shim_A_UNDERLINE(void) { return (int)A_UNDERLINE; }
static inline int shim_A_DIM(void) { return (int)A_DIM; }
static inline int shim_KEY_F(int n) { return KEY_F(n); }
static inline WINDOW *shim_stdscr(void) { return stdscr; }
static inline int shim_LINES(void) { return LINES; }
static inline int shim_COLS(void) { return COLS; }
static inline int shim_COLOR_PAIR(int n) { return (int)COLOR_PAIR(n); }
static inline void shim_set_escdelay(int ms) { set_escdelay(ms); }
static inline mmask_t shim_BUTTON4_PRESSED(void) { return BUTTON4_PRESSED; }
static inline mmask_t shim_BUTTON5_PRESSED(void) { return BUTTON5_PRESSED; }
static inline int shim_KEY_MAX(void) { return KEY_MAX; }
#endif
