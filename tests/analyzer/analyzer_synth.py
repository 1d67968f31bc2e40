"""Synthetic test material for the analyzer: a photo library and collages with known provenance."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from core.libraries import LibraryManager

SIDE = 128
#: (photo, how many 128 px crops to take at most)
PHOTOS = (("astronaut", 10), ("coffee", 6), ("rocket", 6), ("immunohistochemistry", 8), ("gravel", 6), ("grass", 6))


def textured(array: np.ndarray, block: int = 16, min_std: float = 8.0) -> float:
    """Fraction of ``block``-sized squares with some texture (flat areas cannot be attributed)."""
    gray = array.astype(np.float32).mean(axis=-1)
    h, w = gray.shape
    blocks = gray[: h // block * block, : w // block * block].reshape(h // block, block, w // block, block)
    return float((blocks.std(axis=(1, 3)) > min_std).mean())


def photo(name: str) -> np.ndarray:
    import skimage.data

    array = np.asarray(getattr(skimage.data, name)())
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def library_crops() -> list[tuple[str, np.ndarray]]:
    """Non-overlapping, textured 128 px crops of sample photos, named like uploaded files.

    Mostly flat crops (sky, walls) are left out: a flat patch matches any flat patch, so nobody can
    tell where it came from, and the accuracy targets are about what can be told.
    """
    out = []
    for name, count in PHOTOS:
        array = photo(name)
        rows, cols = array.shape[0] // SIDE, array.shape[1] // SIDE
        taken = 0
        for r in range(rows):
            for c in range(cols):
                crop = array[r * SIDE : (r + 1) * SIDE, c * SIDE : (c + 1) * SIDE]
                if taken < count and textured(crop) >= 0.7:
                    out.append((f"{name}_{r}{c}.png", crop))
                    taken += 1
    return out


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(image: Image.Image, quality: int = 50) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def make_library(manager: LibraryManager, name: str = "shots", count: int | None = None) -> list[np.ndarray]:
    crops = library_crops()[:count]
    manager.create_from_files(name, [(file, png_bytes(array)) for file, array in crops])
    return [array for _, array in crops]


def background(rng: np.random.Generator) -> np.ndarray:
    """A 128 px canvas from a photo that is not in the library (the cat)."""
    cat = photo("chelsea")
    y = int(rng.integers(0, cat.shape[0] - SIDE))
    x = int(rng.integers(0, cat.shape[1] - SIDE))
    return cat[y : y + SIDE, x : x + SIDE].copy()


@dataclass
class Collage:
    image: Image.Image
    truth: np.ndarray  # (128, 128) library index or -1


def jitter(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    image = Image.fromarray(patch)
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.88, 1.12)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.88, 1.12)))
    image = ImageEnhance.Color(image).enhance(float(rng.uniform(0.8, 1.2)))
    return np.asarray(image)


def collage(library: list[np.ndarray], seed: int, perturb: bool = False, pieces: int = 5) -> Collage:
    """Rectangles (24-64 px) cut from library images pasted on a non-library background.

    With ``perturb``: each piece's colours are jittered, then the whole collage is resized
    (to 160 px and back down by the analyzer) and saved as JPEG quality 50.
    """
    rng = np.random.default_rng(seed)
    canvas = background(rng)
    truth = np.full((SIDE, SIDE), -1, dtype=np.int64)
    for _ in range(pieces):
        h, w = (int(v) for v in rng.integers(24, 65, size=2))
        item = int(rng.integers(len(library)))
        sy, sx = int(rng.integers(0, SIDE - h + 1)), int(rng.integers(0, SIDE - w + 1))
        ty, tx = int(rng.integers(0, SIDE - h + 1)), int(rng.integers(0, SIDE - w + 1))
        piece = library[item][sy : sy + h, sx : sx + w]
        if perturb:
            piece = jitter(piece, rng)
        canvas[ty : ty + h, tx : tx + w] = piece
        truth[ty : ty + h, tx : tx + w] = item
    image = Image.fromarray(canvas)
    if perturb:
        image = jpeg(image.resize((160, 160), Image.Resampling.BICUBIC), 50)
    return Collage(image, truth)


def near_copy(original: np.ndarray, seed: int) -> Image.Image:
    """A library image resized, cropped (≤ 10 %), JPEG-compressed, maybe mirrored and recoloured."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(original)
    keep_h, keep_w = rng.uniform(0.9, 1.0, size=2)
    h, w = int(SIDE * keep_h), int(SIDE * keep_w)
    top, left = int(rng.integers(0, SIDE - h + 1)), int(rng.integers(0, SIDE - w + 1))
    image = image.crop((left, top, left + w, top + h))
    scale = float(rng.uniform(0.6, 2.5))
    image = image.resize((max(16, int(w * scale)), max(16, int(h * scale))), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        image = Image.fromarray(jitter(np.asarray(image), rng))
    return jpeg(image, int(rng.integers(40, 90)))


@dataclass
class Planted:
    image: Image.Image
    item: int  # library index of the planted content
    scale: float  # how many times bigger the content is in the checked image than in the library picture
    cover: float  # share of the checked image the content covers
    relative: float  # the same scale with both pictures at one size (what the analyzer has to bridge)


def novel_canvas(rng: np.random.Generator, side: int) -> np.ndarray:
    """A ``side`` px canvas cut from a photo that is not in the library (resized up if needed)."""
    name = ("chelsea", "camera", "coins", "clock", "retina", "brick")[int(rng.integers(6))]
    array = photo(name)
    short = min(array.shape[:2])
    if short < side:
        factor = side / short + 0.01
        array = np.asarray(Image.fromarray(array).resize((int(array.shape[1] * factor) + 1,
                                                          int(array.shape[0] * factor) + 1)))
    y = int(rng.integers(0, array.shape[0] - side + 1))
    x = int(rng.integers(0, array.shape[1] - side + 1))
    return array[y : y + side, x : x + side].copy()


def planted_at_scale(library: list[np.ndarray], seed: int, scale: float) -> Planted:
    """Library content resized by ``scale`` and pasted on a novel canvas it covers 25-60 % of.

    Below 1 a whole library picture is shrunk; above 1 a textured square region of 32-64 px (at least a
    sixteenth of the picture) is blown up. The canvas is as big as the coverage asks, so the checked
    image is sometimes smaller, sometimes bigger than the library pictures."""
    rng = np.random.default_rng(seed)
    item = int(rng.integers(len(library)))
    picture = library[item]
    for _ in range(50):
        side = SIDE if scale <= 1 else int(rng.integers(32, 65))
        y, x = (int(v) for v in rng.integers(0, SIDE - side + 1, size=2))
        region = picture[y : y + side, x : x + side]
        if textured(region, block=8) >= 0.7:
            break
    content = max(8, int(round(side * scale)))
    cover = float(rng.uniform(0.25, 0.6))
    canvas_side = max(content, int(round(content / np.sqrt(cover))))
    canvas = novel_canvas(rng, canvas_side)
    piece = Image.fromarray(region).resize((content, content), Image.Resampling.BICUBIC if scale > 1
                                           else Image.Resampling.LANCZOS)
    ty, tx = (int(v) for v in rng.integers(0, canvas_side - content + 1, size=2))
    canvas[ty : ty + content, tx : tx + content] = np.asarray(piece)
    relative = (content / canvas_side) / (side / SIDE)
    return Planted(Image.fromarray(canvas), item, scale, (content / canvas_side) ** 2, relative)


def clean_image(seed: int) -> Image.Image:
    """A photo crop (96-300 px) that shares nothing with the library."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(novel_canvas(rng, int(rng.integers(96, 301))))


def cropped_copy(original: np.ndarray, seed: int) -> Image.Image:
    """A library picture cropped to 55-90 % per side, resized ×0.5-3, colour-shifted and saved as JPEG."""
    rng = np.random.default_rng(seed)
    keep_h, keep_w = rng.uniform(0.55, 0.9, size=2)
    h, w = int(SIDE * keep_h), int(SIDE * keep_w)
    top, left = int(rng.integers(0, SIDE - h + 1)), int(rng.integers(0, SIDE - w + 1))
    image = Image.fromarray(original).crop((left, top, left + w, top + h))
    factor = float(rng.uniform(0.5, 3.0))
    image = image.resize((max(16, int(w * factor)), max(16, int(h * factor))), Image.Resampling.BICUBIC)
    image = Image.fromarray(jitter(np.asarray(image), rng))
    return jpeg(image, int(rng.integers(50, 90)))
