"""One picture of an import, made ready to store: decoded, checked and encoded as the library keeps it.

:func:`prepare_picture` is the piece of an import that costs time (decoding the file, encoding the
library's PNG and its thumbnail); it touches no file, so it runs anywhere: in the importing thread, on
a few threads, or as a Ray task (:func:`core.runners.picture_runner`). The importer writes what it
hands back, in the order of the source.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from core.images import UnreadableImageError, load_image
from core.libraries.sources import ImportCandidate

#: zlib level of the library's PNG files: level 1 encodes a 256 px photo about 3.5× faster than Pillow's
#: default (6) for files about 7 % larger (measured in BENCHMARKS.md, "Library imports at scale")
PNG_LEVEL = 1
THUMB_SIZE = 96


@dataclass(frozen=True)
class PictureTask:
    """The ``number``-th entry of an import (counted from 1) and what to make of it."""

    number: int
    candidate: ImportCandidate
    max_side: int


@dataclass
class PreparedPicture:
    """What :func:`prepare_picture` made of one entry: its encoded files, or why it is skipped."""

    number: int
    name: str
    label: str | None
    png: bytes | None = None
    thumb: bytes | None = None
    channels: int = 3
    notices: list[str] = field(default_factory=list)
    skip_reason: str | None = None


def is_plain_gray(image: Image.Image) -> bool:
    """True for an RGB image whose three channels are identical (a grayscale photo saved as RGB)."""
    if image.mode != "RGB":
        return False
    array = np.asarray(image)
    return bool(np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2]))


def make_thumbnail(image: Image.Image, size: int = THUMB_SIZE) -> Image.Image:
    """A preview whose longest side is ``size``; tiny images are enlarged with crisp pixels."""
    width, height = image.size
    if max(width, height) >= size:
        thumb = image.copy()
        thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
        return thumb
    factor = max(1, size // max(width, height))
    return image.resize((width * factor, height * factor), Image.Resampling.NEAREST)


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def prepare_picture(task: PictureTask) -> PreparedPicture:
    """Decode the entry's bytes (untrusted: :func:`core.images.load_image`), store plain-gray photos as
    gray, encode the picture and its thumbnail."""
    candidate = task.candidate
    out = PreparedPicture(number=task.number, name=candidate.name, label=candidate.label)
    if candidate.skip_reason is not None or candidate.data is None:
        out.skip_reason = candidate.skip_reason or "no data"
        return out
    try:
        loaded = load_image(candidate.data, candidate.name, max_side=task.max_side)
    except UnreadableImageError as exc:
        out.skip_reason = exc.reason
        return out
    image = loaded.image.convert("L") if is_plain_gray(loaded.image) else loaded.image
    out.png = encode_png(image)
    out.thumb = encode_png(make_thumbnail(image))
    out.channels = 1 if image.mode == "L" else 3
    out.notices = list(loaded.notices)
    return out
