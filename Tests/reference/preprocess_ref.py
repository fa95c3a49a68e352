"""The official image preprocessing (the model card's build_transform / dynamic_preprocess /
load_image), with Pillow and NumPy in place of torchvision: T.Resize to the same size is a
copy, ToTensor is v / 255 in float32, Normalize is (x - mean) / std in float32."""
import numpy as np
from PIL import Image

MEAN = np.array((0.485, 0.456, 0.406), dtype=np.float32)
STD = np.array((0.229, 0.224, 0.225), dtype=np.float32)


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def grid(width, height, min_num=1, max_num=12, image_size=448):
    aspect_ratio = width / height
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
        if min_num <= i * j <= max_num)
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])
    return find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size)


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False):
    cols, rows = grid(image.width, image.height, min_num, max_num, image_size)
    resized = image.resize((image_size * cols, image_size * rows))
    tiles = []
    for i in range(cols * rows):
        box = ((i % cols) * image_size, (i // cols) * image_size,
               ((i % cols) + 1) * image_size, ((i // cols) + 1) * image_size)
        tiles.append(resized.crop(box))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles


def pixel_values(path, image_size=448, max_num=12, min_num=1, use_thumbnail=True):
    """[tiles, 3, S, S] float32, as load_image(...) in the model card."""
    return pixel_values_of(Image.open(path).convert("RGB"), image_size, max_num, min_num, use_thumbnail)


def pixel_values_of(image, image_size=448, max_num=12, min_num=1, use_thumbnail=True):
    """The same for an RGB PIL image (a video frame in the model card's load_video)."""
    out = []
    for t in dynamic_preprocess(image, min_num, max_num, image_size, use_thumbnail):
        if t.size != (image_size, image_size):
            t = t.resize((image_size, image_size), Image.Resampling.BICUBIC)
        x = np.asarray(t, dtype=np.float32) / np.float32(255)
        x = (x - MEAN) / STD
        out.append(x.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def tiling_cases(rng, n=700):
    sizes = set()
    for w, h in ((1, 1), (448, 448), (896, 448), (1250, 1000), (500, 400), (5, 4), (1000, 1250), (4000, 3000),
                 (6000, 4000), (8000, 200), (200, 8000), (1, 10000), (10000, 1), (447, 448), (449, 448),
                 (1344, 896), (672, 448), (3, 2), (2, 3), (1500, 1000), (300, 200), (700, 500), (1400, 1000)):
        sizes.add((w, h))
    # Exact ties: aspect ratios halfway between two grids, at small and large areas.
    for (a, b) in ((5, 4), (3, 4), (5, 2), (7, 4), (7, 6), (9, 4), (5, 6), (13, 12), (11, 4)):
        for k in (1, 2, 40, 100, 300, 1000):
            sizes.add((a * k, b * k))
            sizes.add((b * k, a * k))
    while len(sizes) < n:
        k = rng.random()
        if k < 0.4:
            sizes.add((rng.randint(1, 2000), rng.randint(1, 2000)))
        elif k < 0.7:
            sizes.add((rng.randint(100, 8000), rng.randint(100, 8000)))
        else:
            w = rng.randint(1, 5000)
            sizes.add((w, max(1, int(w * rng.choice([0.25, 0.5, 0.75, 1.25, 1.5, 2, 3, 4, 0.1, 10])))))
    cases = []
    for (w, h) in sorted(sizes):
        for mx in (1, 6, 12, 40):
            for mn in (1,):
                cases.append({"w": w, "h": h, "min": mn, "max": mx, "grid": list(grid(w, h, mn, mx))})
    for (w, h) in list(sorted(sizes))[:50]:
        cases.append({"w": w, "h": h, "min": 2, "max": 6, "grid": list(grid(w, h, 2, 6))})
    return cases
