"""The image corpus and Pillow's answers for it (the official pipeline decodes with
Image.open(path).convert("RGB") and resizes with Pillow's bicubic).

  OUT/images/<name>              the files (JPEG and PNG in every variant, real photos from
                                 scikit-image's bundled data, broken files)
  OUT/images/manifest.json       per file: Pillow's RGB as OUT/images/expected/<name>.rgb, or the
                                 expected failure
  OUT/resize-cases.json          sizes and Pillow's bicubic outputs (OUT/resize/<k>.rgb) of a
                                 deterministic pattern image computed the same way in Swift
"""
import io
import json
import os
import shutil
import struct
import zlib

import numpy as np
import png
from PIL import Image

MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS   # Pillow raises DecompressionBombError above this


def synthetic(w, h, seed, kind="mix"):
    """A picture with edges, gradients and noise: what JPEG and resize errors show up on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1))
    g = (y * 255 // max(h - 1, 1))
    b = ((x // 7 + y // 5) % 2) * 200 + 20
    img = np.stack([r, g, b], -1).astype(np.int32)
    img[(x - w // 2) ** 2 + (y - h // 2) ** 2 < (min(w, h) // 3) ** 2] = [250, 30, 40]
    img += rng.integers(-12, 13, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def pattern(w, h):
    """Deterministic integer pattern, identical in Swift (ImagingTests.pattern)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (x * 7 + y * 3) % 256
    g = (x * y + 3 * x) % 253
    b = ((x // 4) ^ (y // 3)) * 37 % 256
    return np.stack([r, g, b], -1).astype(np.uint8)


def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def make_corpus(out):
    d = os.path.join(out, "images")
    exp = os.path.join(d, "expected")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(exp)
    manifest = []

    def expect_ok(name, note=""):
        im = Image.open(os.path.join(d, name))
        rgb = np.asarray(im.convert("RGB"))
        rgb.tofile(os.path.join(exp, name + ".rgb"))
        manifest.append({"file": name, "ok": True, "width": im.width, "height": im.height, "mode": im.mode, "note": note})

    def expect_error(name, contains):
        manifest.append({"file": name, "ok": False, "contains": contains})

    base = synthetic(67, 45, 1)
    # JPEG: baseline / progressive x subsampling, odd sizes, grayscale, several qualities.
    for prog in (False, True):
        for sub, label in ((0, "444"), (1, "422"), (2, "420")):
            for (w, h) in ((67, 45), (16, 16), (33, 97)):
                name = f"jpeg-{'prog' if prog else 'base'}-{label}-{w}x{h}.jpg"
                Image.fromarray(synthetic(w, h, w * h)).save(os.path.join(d, name), quality=85, subsampling=sub,
                                                           progressive=prog)
                expect_ok(name)
    for q in (10, 50, 100):
        name = f"jpeg-q{q}.jpg"
        Image.fromarray(base).save(os.path.join(d, name), quality=q)
        expect_ok(name)
    Image.fromarray(base[..., 1]).save(os.path.join(d, "jpeg-gray.jpg"), quality=90)
    expect_ok("jpeg-gray.jpg")
    Image.fromarray(base[..., 1]).save(os.path.join(d, "jpeg-gray-prog.jpg"), quality=90, progressive=True)
    expect_ok("jpeg-gray-prog.jpg")
    Image.fromarray(base).convert("CMYK").save(os.path.join(d, "jpeg-cmyk.jpg"), quality=90)
    expect_error("jpeg-cmyk.jpg", "CMYK")
    Image.fromarray(synthetic(1, 1, 5)).save(os.path.join(d, "jpeg-1x1.jpg"))
    expect_ok("jpeg-1x1.jpg")

    # PNG through Pillow: RGB, RGBA, L, LA, P with and without transparency, 16-bit grey.
    rgba = np.concatenate([base, (np.arange(67 * 45).reshape(45, 67, 1) % 256).astype(np.uint8)], -1)
    Image.fromarray(base).save(os.path.join(d, "png-rgb.png")); expect_ok("png-rgb.png")
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, "png-rgba.png")); expect_ok("png-rgba.png", "alpha dropped")
    Image.fromarray(base[..., 0]).save(os.path.join(d, "png-gray.png")); expect_ok("png-gray.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(os.path.join(d, "png-gray-alpha.png")); expect_ok("png-gray-alpha.png")
    pal = Image.fromarray(base).quantize(colors=50)
    pal.save(os.path.join(d, "png-palette.png")); expect_ok("png-palette.png")
    pal.save(os.path.join(d, "png-palette-trns.png"), transparency=3); expect_ok("png-palette-trns.png")
    Image.fromarray(base).quantize(colors=4).save(os.path.join(d, "png-palette-2bit.png"), bits=2)
    expect_ok("png-palette-2bit.png")
    # pypng: 16-bit RGB/RGBA/grey/grey+alpha, 1/2/4-bit grey, interlaced (8 and 16 bits), grey with tRNS.
    h, w = base.shape[:2]
    rng = np.random.default_rng(3)
    w16 = (base.astype(np.uint32) * 257 + rng.integers(0, 257, size=base.shape)).astype(np.uint16)

    def pypng(name, rows, **kw):
        with open(os.path.join(d, name), "wb") as f:
            png.Writer(w, h, **kw).write(f, rows)
        expect_ok(name)

    pypng("png-rgb16.png", w16.reshape(h, -1).tolist(), greyscale=False, bitdepth=16)
    rgba16 = np.concatenate([w16, w16[..., :1]], -1)
    pypng("png-rgba16.png", rgba16.reshape(h, -1).tolist(), greyscale=False, alpha=True, bitdepth=16)
    pypng("png-gray16.png", (w16[..., 0] // 200).tolist(), greyscale=True, bitdepth=16)
    pypng("png-gray-alpha16.png", w16[..., :2].reshape(h, -1).tolist(), greyscale=True, alpha=True, bitdepth=16)
    for bits in (1, 2, 4):
        pypng(f"png-gray{bits}.png", (base[..., 0] >> (8 - bits)).tolist(), greyscale=True, bitdepth=bits)
    pypng("png-interlaced.png", base.reshape(h, -1).tolist(), greyscale=False, interlace=True)
    pypng("png-interlaced-rgba.png", rgba.reshape(h, -1).tolist(), greyscale=False, alpha=True, interlace=True)
    pypng("png-interlaced-rgb16.png", w16.reshape(h, -1).tolist(), greyscale=False, bitdepth=16, interlace=True)
    pypng("png-interlaced-gray16.png", (w16[..., 0] // 200).tolist(), greyscale=True, bitdepth=16, interlace=True)
    pypng("png-gray-trns.png", base[..., 2].tolist(), greyscale=True, transparent=20)
    Image.fromarray(synthetic(1, 1, 9)).save(os.path.join(d, "png-1x1.png")); expect_ok("png-1x1.png")

    # Real photos shipped with scikit-image.
    import skimage
    sk = os.path.join(os.path.dirname(skimage.__file__), "data")
    for f in ("astronaut.png", "chelsea.png", "coffee.png", "camera.png", "hubble_deep_field.jpg", "retina.jpg",
              "rocket.jpg", "motorcycle_left.png"):
        if os.path.exists(os.path.join(sk, f)):
            shutil.copy(os.path.join(sk, f), os.path.join(d, "photo-" + f))
            expect_ok("photo-" + f)

    # WebP (libwebp in Pillow): lossy, lossless, with alpha, odd sizes; animated is refused.
    for name, arr, kw in (("webp-lossy.webp", base, {"quality": 80}), ("webp-lossless.webp", base, {"lossless": True}),
                          ("webp-lossy-alpha.webp", rgba, {"quality": 70}), ("webp-lossless-alpha.webp", rgba, {"lossless": True}),
                          ("webp-odd.webp", synthetic(33, 97, 4), {"quality": 90})):
        Image.fromarray(arr, "RGBA" if arr.shape[-1] == 4 else "RGB").save(os.path.join(d, name), **kw)
        expect_ok(name)
    frames = [Image.fromarray(synthetic(20, 20, k)) for k in range(3)]
    frames[0].save(os.path.join(d, "webp-animated.webp"), save_all=True, append_images=frames[1:], duration=100)
    expect_error("webp-animated.webp", "animated WebP")
    # Format from the bytes, not the name.
    shutil.copy(os.path.join(d, "png-rgb.png"), os.path.join(d, "png-named.jpg")); expect_ok("png-named.jpg")
    shutil.copy(os.path.join(d, "jpeg-q50.jpg"), os.path.join(d, "jpeg-no-extension")); expect_ok("jpeg-no-extension")

    # Broken and hostile files.
    open(os.path.join(d, "not-an-image.jpg"), "w").write("hello, this is text\n")
    expect_error("not-an-image.jpg", "not a JPEG, PNG or WebP")
    data = open(os.path.join(d, "webp-lossy.webp"), "rb").read()
    open(os.path.join(d, "truncated.webp"), "wb").write(data[: len(data) // 2])
    expect_error("truncated.webp", "truncated or corrupt")
    open(os.path.join(d, "empty.png"), "wb").close()
    expect_error("empty.png", "empty")
    for name, src in (("truncated.jpg", "jpeg-q50.jpg"), ("truncated.png", "png-rgb.png")):
        data = open(os.path.join(d, src), "rb").read()
        open(os.path.join(d, name), "wb").write(data[: len(data) // 2])
        expect_error(name, "truncated or corrupt")
    # A PNG whose header claims 20000 x 20000 pixels (400 M): refused before allocating.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + png_chunk(b"IEND", b"")
    open(os.path.join(d, "bomb.png"), "wb").write(bomb)
    expect_error("bomb.png", "20000x20000")
    # A JPEG whose frame header claims 30000 x 30000.
    data = bytearray(open(os.path.join(d, "jpeg-q50.jpg"), "rb").read())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", 30000, 30000)
    open(os.path.join(d, "bomb.jpg"), "wb").write(bytes(data))
    expect_error("bomb.jpg", "30000x30000")
    json.dump({"max_pixels": MAX_PIXELS, "files": manifest}, open(os.path.join(d, "manifest.json"), "w"), indent=1)


def resize_sizes():
    src = [(1, 1), (2, 3), (7, 5), (13, 448), (448, 448), (640, 480), (500, 333), (1000, 1000), (8000, 200),
           (200, 8000), (6000, 4000), (4000, 3000), (1920, 1080), (37, 1201)]
    dst = [(448, 448), (896, 448), (448, 1344), (1344, 896), (1, 1), (3, 2), (100, 77), (5, 900), (1792, 1344)]
    cases = []
    k = 0
    for i, s in enumerate(src):
        for j, t in enumerate(dst):
            if (i + j) % 3 == 0 or s in ((6000, 4000), (8000, 200), (1, 1)) or t == (448, 448):
                cases.append((k, s, t))
                k += 1
    return cases


def make_resize_cases(out):
    d = os.path.join(out, "resize")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cases = []
    cache = {}
    for k, s, t in resize_sizes():
        if s not in cache:
            cache[s] = Image.fromarray(pattern(*s))
        r = np.asarray(cache[s].resize(t, Image.Resampling.BICUBIC))
        r.tofile(os.path.join(d, f"{k}.rgb"))
        cases.append({"id": k, "src": list(s), "dst": list(t)})
    json.dump(cases, open(os.path.join(out, "resize-cases.json"), "w"))
