#include <sixel.h>
#include <sys/ioctl.h>
#include <termios.h>
// TIOCGWINSZ is a macro built from _IOR: Swift cannot import it.
static inline int shim_window_pixels(int fd, unsigned short *cols, unsigned short *rows,
                                     unsigned short *xpixel, unsigned short *ypixel) {
    struct winsize w;
    if (ioctl(fd, TIOCGWINSZ, &w) != 0) return -1;
    *cols = w.ws_col; *rows = w.ws_row; *xpixel = w.ws_xpixel; *ypixel = w.ws_ypixel;
    return 0;
}
static inline int shim_SIXEL_FAILED(SIXELSTATUS s) { return SIXEL_FAILED(s); }
