"""A video's filmstrip in a screenshot of the app in xterm (sixel).

make-video PATH: 8 lossless frames (FFV1 in Matroska), frame i in the flat colour QUAD[i // 2];
the model card's 8 segments pick frames 0, 1, 2, 3, 4, 4, 5, 6, so the strip's colours from
left to right are QUAD[0], QUAD[1], QUAD[2], QUAD[3].
check SHOT LOG: the last "sixel placements" line has the strip (a negative id); along its middle
row the runs of quadrant colours are those four, in order, and cover most of its width.
"""
import re
import sys

import av
import numpy as np
from PIL import Image

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from importlib import import_module
sixel = import_module("check-sixel")


def make_video(path):
    with av.open(path, "w") as out:
        s = out.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv444p"
        for i in range(8):
            a = np.zeros((64, 96, 3), dtype=np.uint8)
            a[:, :] = sixel.QUAD[i // 2]
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def check(shot, log):
    text = open(log, encoding="utf-8").read()
    last = [l for l in text.splitlines() if "sixel placements" in l][-1]
    m = re.search(r"(-\d+)@(\d+),(\d+),(\d+)x(\d+)=(\d+)x(\d+)", last)
    if not m:
        print(f"no filmstrip placement (negative id) in: {last}"); return 1
    cw, ch = map(int, re.search(r"cell (\d+)x(\d+)\)", last).groups())
    rows = int(re.search(r"terminal \d+x(\d+)", text).group(1))
    im = Image.open(shot).convert("RGB")
    ox, oy = sixel.grid_origin(im.load(), im.size, rows, cw, ch)
    _, cx, cy, _, _, w, h = map(int, m.groups())
    x0, y0 = ox + cx * cw, oy + cy * ch
    row = np.asarray(im, dtype=np.int32)[y0 + h // 2, x0:x0 + w]
    seen, covered = [], 0
    for p in row:
        hit = [i for i, c in enumerate(sixel.QUAD) if sixel.near(tuple(p), c)]
        if hit:
            covered += 1
            if not seen or seen[-1] != hit[0]:
                seen.append(hit[0])
    print(f"filmstrip at {x0},{y0} {w}x{h} px: colour runs {seen}, {covered}/{w} pixels in frame colours")
    return 0 if seen == [0, 1, 2, 3] and covered > 0.8 * w else 1


if __name__ == "__main__":
    if sys.argv[1] == "make-video":
        make_video(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2], sys.argv[3]))
