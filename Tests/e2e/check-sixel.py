"""Checks a screenshot of the app in xterm against the sixel placements the app logged.

make-image PATH: a 240x160 PNG in four flat quadrants whose colours no theme or ANSI palette uses.
check SHOT LOG NAME: for the last "sixel placements" line of LOG, each image's quadrant centres
must have the quadrant colours, and no pixel outside the placed images may be near any of them.
"""
import re
import sys

import numpy as np
from PIL import Image

QUAD = [(250, 140, 20), (140, 60, 210), (40, 110, 60), (250, 160, 200)]   # TL, TR, BL, BR


def grid_origin(px, size, rows, cw, ch):
    """Screen position of cell (0, 0), found from the text grid itself: the status bar is the
    last row, drawn in reverse video (dark on the white xterm background), so its top-left
    corner is cell (0, rows - 1)."""
    W, H = size
    dark = lambda p: sum(p) < 120
    runs = []
    for x in range(0, 12):                       # the first pixels of the row: the bar's edge, before any glyph
        y = 0
        while y < H:
            if dark(px[x, y]):
                y0 = y
                while y < H and dark(px[x, y]):
                    y += 1
                if ch * 0.8 <= y - y0 <= ch * 1.2:      # one text row tall: not the window border, not the root
                    runs.append((y0, x))
            y += 1
    top = max(y0 for (y0, _) in runs)
    left = min(x for (y0, x) in runs if y0 == top)
    return left, top - (rows - 1) * ch


def make_image(path):
    im = Image.new("RGB", (240, 160))
    for i, c in enumerate(QUAD):
        x0, y0 = (i % 2) * 120, (i // 2) * 80
        im.paste(c, (x0, y0, x0 + 120, y0 + 80))
    im.save(path)


def near(p, c, tol=45):
    return sum((a - b) ** 2 for a, b in zip(p, c)) <= tol * tol


def check(shot, log, name):
    lines = [l for l in open(log, encoding="utf-8") if "sixel placements" in l]
    if not lines:
        print(f"{name}: no placements logged"); return 1
    last = lines[-1]
    cw, ch = map(int, re.search(r"cell (\d+)x(\d+)\)", last).groups())
    rows = int(re.search(r"terminal \d+x(\d+)", open(log, encoding="utf-8").read()).group(1))
    im = Image.open(shot).convert("RGB")
    px = im.load()
    ORIGIN = grid_origin(px, im.size, rows, cw, ch)
    rects = []
    for m in re.finditer(r"(\d+)@(\d+),(\d+),(\d+)x(\d+)=(\d+)x(\d+)", last):
        _, cx, cy, _, _, w, h = map(int, m.groups())
        rects.append((ORIGIN[0] + cx * cw, ORIGIN[1] + cy * ch, w, h))
    bad = 0
    for (x, y, w, h) in rects:
        for i, c in enumerate(QUAD):
            sx, sy = x + (i % 2) * w // 2 + w // 4, y + (i // 2) * h // 2 + h // 4
            if not near(px[sx, sy], c):
                print(f"{name}: image at {x},{y} {w}x{h}: quadrant {i} at ({sx},{sy}) is {px[sx, sy]}, want {c}")
                bad += 1
    # Stray pixels: anything near a quadrant colour outside every placed image (the xterm window only).
    a = np.asarray(im, dtype=np.int32)[:670, :1110]
    mask = np.zeros(a.shape[:2], dtype=bool)
    for c in QUAD:
        mask |= ((a - np.array(c)) ** 2).sum(axis=2) <= 30 * 30
    for (x, y, w, h) in rects:
        mask[y:y + h, x:x + w] = False
    stray = int(mask.sum())
    for (yy, xx) in list(zip(*np.nonzero(mask)))[:3]:
        print(f"{name}: stray image-coloured pixel at ({xx},{yy}): {tuple(int(v) for v in a[yy, xx])}")
    if stray:
        print(f"{name}: {stray} stray pixels")
    ok = bad == 0 and stray == 0
    print(f"{name}: {len(rects)} image(s) where the log says, {stray} stray pixels: {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "make-image":
        make_image(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4]))
