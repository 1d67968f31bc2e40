"""The built-in libraries, made offline from data bundled with scikit-image and scikit-learn.

They are materialised lazily (the first time they are used) by
:class:`~core.libraries.manager.LibraryManager`; this module only knows how to produce their items.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

PHOTO_CROP_SIZE = 64
#: Photos bundled with scikit-image (no download needed). Others (lily, skin, eagle...) are fetched
#: from the internet by scikit-image, so they are not used.
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "clock",
    "colorwheel",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "page",
    "text",
)
#: Crops per photo: the short side split in 2 and in 4 (large and small snippets), at most this many.
PHOTO_DIVISIONS: tuple[int, ...] = (2, 4)
PHOTO_MAX_CROPS = 30
#: what each sample photo shows, in a few plain words (the name people see: "Coffee cup #3")
PHOTO_WORDS: dict[str, str] = {
    "astronaut": "Astronaut",
    "camera": "Cameraman",
    "coffee": "Coffee cup",
    "chelsea": "Cat",
    "rocket": "Rocket",
    "brick": "Brick wall",
    "grass": "Grass",
    "gravel": "Gravel",
    "moon": "Moon surface",
    "coins": "Coins",
    "clock": "Clock",
    "colorwheel": "Colour wheel",
    "immunohistochemistry": "Microscope slide",
    "hubble_deep_field": "Night sky",
    "retina": "Eye retina",
    "page": "Printed page",
    "text": "Lettering",
}


@dataclass
class BuiltinItem:
    """One image of a built-in library."""

    id: str
    image: Image.Image
    label: str
    source: str


@dataclass
class BuiltinLibrary:
    """How to make one built-in library."""

    name: str
    title: str
    description: str
    channels: int
    label_names: list[str] | None  # fixed label order, or None for "in order of appearance"
    build: Callable[[], Iterator[BuiltinItem]]


def _photo(name: str) -> np.ndarray | None:
    import skimage.data

    try:
        array = np.asarray(getattr(skimage.data, name)())
    except Exception as exc:  # noqa: BLE001 - a missing sample photo must not stop the others
        logger.warning("skipping sample photo %r: %s", name, exc)
        return None
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] not in (3, 4))
    ):
        logger.warning(
            "skipping sample photo %r with unexpected format %s %s", name, array.dtype, array.shape
        )
        return None
    return array


def _crop_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Square crop boxes on centred grids at each division of the short side, evenly thinned."""
    boxes: list[tuple[int, int, int, int]] = []
    for division in PHOTO_DIVISIONS:
        side = min(width, height) // division
        if side < PHOTO_CROP_SIZE // 2:
            continue
        columns, rows = width // side, height // side
        left0, top0 = (width - columns * side) // 2, (height - rows * side) // 2
        for row in range(rows):
            for column in range(columns):
                left, top = left0 + column * side, top0 + row * side
                boxes.append((left, top, left + side, top + side))
    if len(boxes) > PHOTO_MAX_CROPS:
        keep = np.linspace(0, len(boxes) - 1, PHOTO_MAX_CROPS).round().astype(int)
        boxes = [boxes[i] for i in sorted(set(keep.tolist()))]
    return boxes


def build_photos() -> Iterator[BuiltinItem]:
    for name in PHOTO_NAMES:
        array = _photo(name)
        if array is None:
            continue
        image = Image.fromarray(array).convert("RGB")  # grayscale and RGBA photos become RGB
        for index, box in enumerate(_crop_boxes(*image.size)):
            crop = image.resize((PHOTO_CROP_SIZE, PHOTO_CROP_SIZE), Image.Resampling.LANCZOS, box=box)
            side = box[2] - box[0]
            yield BuiltinItem(
                id=f"{name}-{index:03d}",
                image=crop,
                label=name,
                source=f"skimage.data.{name}() crop x={box[0]} y={box[1]} size={side}",
            )


def build_faces() -> Iterator[BuiltinItem]:
    import skimage.data

    images = np.asarray(skimage.data.lfw_subset())
    if images.dtype != np.uint8:  # float in [0, 1] in recent scikit-image
        images = np.clip(images * 255.0, 0, 255).round().astype(np.uint8)
    # Documented: the first 100 images are faces, the last 100 are non-faces (background patches).
    for index, array in enumerate(images):
        label = "face" if index < 100 else "non-face"
        yield BuiltinItem(
            id=f"{label}-{index:03d}",
            image=Image.fromarray(np.ascontiguousarray(array)),
            label=label,
            source=f"skimage.data.lfw_subset()[{index}]",
        )


def build_digits() -> Iterator[BuiltinItem]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(np.asarray(digits.images) * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    for index, (array, target) in enumerate(zip(images, digits.target, strict=True)):
        yield BuiltinItem(
            id=f"digit-{index:04d}",
            image=Image.fromarray(np.ascontiguousarray(array)),
            label=str(int(target)),
            source=f"sklearn.datasets.load_digits()[{index}]",
        )


def _number(item_id: str) -> int | None:
    """The number at the end of a built-in item id (``face-052`` -> 52), None if there is none."""
    tail = item_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def builtin_item_name(library: str, item_id: str, label: str | None = None) -> str | None:
    """The short name people see for a picture of a built-in library: ``Faces #52``, ``Coffee cup #3``.

    None when ``library`` is not a built-in one or the id is not one of its own (the caller falls back).
    """
    number = _number(item_id)
    if number is None:
        return None
    if library == "faces":
        return f"{'Faces' if item_id.startswith('face-') else 'Backgrounds'} #{number}"
    if library == "digits":
        return f"Digits #{number}" + (f" (a {label})" if label else "")
    if library == "photos":
        photo = item_id.rsplit("-", 1)[0]
        words = PHOTO_WORDS.get(photo) or photo.replace("_", " ").capitalize()
        return f"{words} #{number}"
    return None


BUILTIN_LIBRARIES: dict[str, BuiltinLibrary] = {
    "photos": BuiltinLibrary(
        name="photos",
        title="Photo snippets",
        description=(
            "About 400 small square snippets cut from classic sample photos: an astronaut, a cat, a cup of "
            "coffee, a rocket, coins, a clock, and textures like brick, grass and gravel. In colour. "
            "A good start for colourful, photo-like results."
        ),
        channels=3,
        label_names=None,
        build=build_photos,
    ),
    "faces": BuiltinLibrary(
        name="faces",
        title="Faces and backgrounds",
        description=(
            "200 tiny black-and-white pictures: 100 close-ups of people's faces and 100 background patches "
            "with no face. Shows how new faces get pieced together from bits of real ones."
        ),
        channels=1,
        label_names=["face", "non-face"],
        build=build_faces,
    ),
    "digits": BuiltinLibrary(
        name="digits",
        title="Handwritten digits",
        description=(
            "1,797 very small black-and-white scans of handwritten numbers from 0 to 9. "
            "The quickest library to try things out: results appear in seconds."
        ),
        channels=1,
        label_names=[str(digit) for digit in range(10)],
        build=build_digits,
    ),
}
