#!/usr/bin/env python3
"""Tiny videos and what the model card's reader makes of them, for Tests/VideoTests.

  OUT/videos/NAME.EXT            written with PyAV (codecs, containers, pixel formats, colour tags)
  OUT/videos/cases.json          per video: decord's len() and get_avg_fps(), get_index() for several
                                 segment counts, and the sampled frames' RGB (decord's vr[i]) as
                                 NAME-FRAME.rgb (raw height x width x 3 bytes)
  OUT/videos/index-cases.json    get_index() over many frame counts, frame rates and segment counts
  OUT/videos/bad-*               files each reader must refuse

The model card's load_video reads with decord.VideoReader(path, ctx=cpu(0), num_threads=1) and
samples with get_index(bound=None, fps, max_frame=len(vr)-1, first_idx=0, num_segments).
"""
import argparse
import fractions
import json
import os

import av
import decord
import numpy as np


def get_index(bound, fps, max_frame, first_idx=0, num_segments=32):
    """The model card's frame sampling: the middle of each of num_segments equal segments."""
    start, end = bound if bound else (-100000, 100000)
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]


def pattern(i, w, h):
    """A frame that changes with i: gradients, a moving block, a colour ramp over time."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (np.arange(w) * 255 // max(w - 1, 1))[None, :]
    img[..., 1] = (np.arange(h) * 255 // max(h - 1, 1))[:, None]
    img[..., 2] = (i * 37) % 256
    y, x = (i * 3) % max(h - 4, 1), (i * 5) % max(w - 6, 1)
    img[y:y + 4, x:x + 6] = (255, 255 - (i * 11) % 256, 0)
    return img


def write(path, frames, rate, w, h, codec, pix, container=None, options=None, colorspace=None, color_range=None):
    out = av.open(path, "w", format=container)
    s = out.add_stream(codec, rate=rate, options=options or {})
    s.width, s.height, s.pix_fmt = w, h, pix
    if colorspace is not None:
        s.codec_context.colorspace = colorspace
    if color_range is not None:
        s.codec_context.color_range = color_range
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24")
        for p in s.encode(f):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()


VIDEOS = [
    # name, frames, rate, w, h, codec, pix, container, options, colorspace, range
    ("mpeg4-25fps.mp4", 30, 25, 66, 38, "mpeg4", "yuv420p", None, None, None, None),
    ("h264-bframes.mkv", 17, 30, 56, 32, "libx264", "yuv420p", None, {"bf": "2", "g": "8"}, None, None),
    ("h264-bt709.mp4", 23, fractions.Fraction(30000, 1001), 64, 36, "libx264", "yuv420p", None, None, 1, 1),
    ("h264-444-full.mp4", 12, 12, 40, 30, "libx264", "yuv444p", None, None, None, 2),
    ("mjpeg.avi", 9, 10, 34, 26, "mjpeg", "yuvj422p", None, None, None, None),
    ("vp9.webm", 41, 24, 32, 32, "libvpx-vp9", "yuv420p", None, {"deadline": "realtime", "cpu-used": "8"}, None, None),
    ("one-frame.mp4", 1, 25, 32, 24, "mpeg4", "yuv420p", None, None, None, None),
]
SEGMENTS = [1, 2, 3, 8, 16, 32]
# Phone videos store upright as a rotation in the track header (tkhd's display matrix); decord
# turns the frames by it (90: clockwise, 270: counter-clockwise), so frames come out upright.
ROTATED = [("rot90.mp4", 90), ("rot180.mp4", 180), ("rot270.mp4", 270)]
ROTATED_SOURCE = (11, 10, 64, 32)  # frames, rate, width, height (an mpeg4 MP4)
# A raw MPEG-4 elementary stream: no container frame rate in this FFmpeg (decord refuses it).
RAW_STREAM = ("raw-mpeg4.m4v", 20, 25, 40, 24)


def display_matrix(degrees):
    """tkhd's 3x3 matrix (16.16 fixed point, the last column 2.30) turning the picture clockwise."""
    c, s = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    return (c << 16, s << 16, 0, (-s) << 16, c << 16, 0, 0, 0, 1 << 30)


def rotated(src, degrees):
    """src's bytes with its video track's display matrix set to a rotation by `degrees`."""
    import struct
    data = bytearray(src)
    i = data.find(b"tkhd")
    version = data[i + 4]
    at = i + 8 + (8 if version == 0 else 16) + 8 + (4 if version == 0 else 8) + 16
    assert struct.unpack(">9i", data[at:at + 36]) == (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30), "not the identity matrix"
    data[at:at + 36] = struct.pack(">9i", *display_matrix(degrees))
    return bytes(data)


def bad_files(out):
    """Inputs to refuse: audio only, truncated, garbage, text, empty, an unknown codec, no frames."""
    paths = {}
    p = os.path.join(out, "bad-audio-only.wav")
    c = av.open(p, "w")
    s = c.add_stream("pcm_s16le", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    frame.sample_rate = 8000
    for pk in s.encode(frame):
        c.mux(pk)
    for pk in s.encode():
        c.mux(pk)
    c.close()
    paths["audio-only"] = p
    src = open(os.path.join(out, "mpeg4-25fps.mp4"), "rb").read()
    # An MP4 cut before its index (PyAV writes the moov box last).
    for name, data in [("bad-truncated.mp4", src[: len(src) // 3]), ("bad-garbage.mp4", bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8))),
                       ("bad-text.mp4", b"this is not a video\n" * 20), ("bad-empty.mp4", b"")]:
        open(os.path.join(out, name), "wb").write(data)
        paths[name[4:-4]] = os.path.join(out, name)
    # An MP4 with its index first (faststart), cut: the index places frames past the end.
    p = os.path.join(out, "bad-cut-index.mp4")
    c = av.open(p, "w", options={"movflags": "faststart"})
    s = c.add_stream("mpeg4", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(40):
        for pk in s.encode(av.VideoFrame.from_ndarray(pattern(i, 64, 48), format="rgb24")):
            c.mux(pk)
    for pk in s.encode():
        c.mux(pk)
    c.close()
    data = open(p, "rb").read()
    assert data.find(b"moov") < data.find(b"mdat"), "the index should come first"
    open(p, "wb").write(data[: len(data) * 6 // 10])
    paths["cut-index"] = p
    # An AVI whose video fourcc names no codec FFmpeg knows.
    p = os.path.join(out, "bad-codec.avi")
    write(p, 3, 10, 32, 24, "mpeg4", "yuv420p", container="avi")
    data = bytearray(open(p, "rb").read())
    for tag in (b"FMP4", b"fmp4"):
        i = data.find(tag)
        while i >= 0:
            data[i:i + 4] = b"QZQZ"
            i = data.find(tag, i + 4)
    open(p, "wb").write(bytes(data))
    paths["codec"] = p
    # A video track with no frames.
    p = os.path.join(out, "bad-no-frames.avi")
    c = av.open(p, "w")
    s = c.add_stream("mpeg4", rate=25)
    s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
    c.start_encoding()
    c.close()
    paths["no-frames"] = p
    return paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="testdata")
    make_all(ap.parse_args().out)


def make_all(root):
    out = os.path.join(root, "videos")
    os.makedirs(out, exist_ok=True)
    cases = []
    # A cut Matroska file keeps its header: decord reads the frames before the cut as the video.
    cut = [("cut-h264.mkv", "h264-bframes.mkv", 0.6), ("cut-vp9.webm", "vp9.webm", 0.5)]
    upright = os.path.join(out, "rot0.mp4")
    write(upright, *ROTATED_SOURCE, "mpeg4", "yuv420p")
    later = [(c, None) + (None,) * 9 for c, _, _ in cut] + [(c, None) + (None,) * 9 for c, _ in ROTATED]
    for name, n, rate, w, h, codec, pix, container, options, cs, rng in VIDEOS + later:
        path = os.path.join(out, name)
        if n is not None:
            write(path, n, rate, w, h, codec, pix, container, options, cs, rng)
        elif name in dict(ROTATED):
            degrees = dict(ROTATED)[name]
            open(path, "wb").write(rotated(open(upright, "rb").read(), degrees))
            w, h = ROTATED_SOURCE[2:] if degrees == 180 else ROTATED_SOURCE[:1:-1]
        else:
            src, frac = next((s, f) for c, s, f in cut if c == name)
            data = open(os.path.join(out, src), "rb").read()
            open(path, "wb").write(data[: int(len(data) * frac)])
            w, h = next((v[3], v[4]) for v in VIDEOS if v[0] == src)
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        max_frame, fps = len(vr) - 1, float(vr.get_avg_fps())
        sampled = {str(k): get_index(None, fps, max_frame, 0, k) for k in SEGMENTS}
        frames = sorted({i for v in sampled.values() for i in v})
        for i in frames:
            rgb = vr[i].asnumpy()
            assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
            open(os.path.join(out, f"{name}-{i}.rgb"), "wb").write(rgb.tobytes())
        cases.append({"file": name, "frames": len(vr), "fps": fps, "width": w, "height": h, "indices": sampled,
                      "decoded": frames})
    os.remove(upright)
    json.dump(cases, open(os.path.join(out, "cases.json"), "w"), indent=1)
    name, n, rate, w, h = RAW_STREAM
    write(os.path.join(out, name), n, rate, w, h, "mpeg4", "yuv420p", container="m4v")
    json.dump({"file": name, "frames": n, "width": w, "height": h,
               "indices": {str(k): get_index(None, rate, n - 1, 0, k) for k in SEGMENTS}},
              open(os.path.join(out, "raw-stream.json"), "w"), indent=1)
    rng = np.random.default_rng(19)
    index_cases = []
    for max_frame in [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 99, 100, 249, 250, 1000, 3599, 107999]:
        for fps in [1.0, 23.976023976023978, 25.0, 29.97002997002997, 30.0, 60.0, float(rng.uniform(0.1, 120))]:
            for seg in [1, 2, 3, 4, 5, 7, 8, 16, 32, 64]:
                index_cases.append({"max_frame": max_frame, "fps": fps, "segments": seg,
                                    "indices": get_index(None, fps, max_frame, 0, seg)})
    for bound in [(0.0, 1.0), (0.5, 2.25), (1.0, 1000.0), (-3.0, 0.7)]:
        for seg in [1, 4, 8]:
            index_cases.append({"max_frame": 99, "fps": 25.0, "segments": seg, "bound": list(bound),
                                "indices": get_index(bound, 25.0, 99, 0, seg)})
    json.dump(index_cases, open(os.path.join(out, "index-cases.json"), "w"))
    bad = bad_files(out)
    json.dump({k: os.path.basename(v) for k, v in bad.items()}, open(os.path.join(out, "bad.json"), "w"), indent=1)
    print(f"videos: {len(cases)} files, {len(index_cases)} index cases, {len(bad)} bad inputs")


if __name__ == "__main__":
    main()
