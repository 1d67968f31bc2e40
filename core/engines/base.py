"""The interface every engine implements: a request in, images with metadata out.

An engine takes a :class:`GenerationRequest` (or an engine-specific subclass), reports progress
through a callback, honours a :class:`CancelToken`, and returns one :class:`GeneratedImage` per
requested image. It also hands every image to an ``on_image`` callback as soon as that image is
finished, so a caller can save it at once and a later crash or kill keeps the finished ones.
Engines do not persist anything: the store does (:mod:`core.store`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from core.errors import BadInputError, GenerationCancelled


@dataclass
class Progress:
    """One progress report: ``step`` of ``total_steps`` for image ``image_index`` of ``count``."""

    step: int
    total_steps: int
    image_index: int = 0
    count: int = 1
    message: str = ""
    preview: Image.Image | None = None

    @property
    def fraction(self) -> float:
        done = self.image_index * self.total_steps + self.step
        return min(1.0, done / max(1, self.count * self.total_steps))


ProgressCallback = Callable[[Progress], None]
#: called with each finished image, in order, before the engine starts on the next one
ImageCallback = Callable[["GeneratedImage"], None]

#: seeds are stored as signed 64-bit integers (PostgreSQL BIGINT, SQLite INTEGER)
MAX_SEED = 2**63 - 1


class CancelToken:
    """Thread-safe cancel flag shared between the UI and a running engine."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise GenerationCancelled()


@dataclass
class GenerationRequest:
    """Fields every engine understands; engines subclass it with their own settings."""

    seed: int = 0
    count: int = 1

    def seeds(self) -> list[int]:
        """One seed per image, so every image of a batch can be reproduced on its own."""
        return [self.seed + i for i in range(self.count)]

    def check_seed(self) -> None:
        """Refuse a seed that is not a whole number, or whose last image's seed (seed + count - 1) is too big."""
        check_seed(self.seed, self.count)


def check_seed(seed: object, count: object = 1) -> None:
    """Raise :class:`BadInputError` unless ``seed`` .. ``seed + count - 1`` all lie in 0 .. :data:`MAX_SEED`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise BadInputError(f"The seed must be a whole number from 0 to {MAX_SEED} (got {seed!r}).")
    last = int(seed) + max(1, int(count) if isinstance(count, (int, np.integer)) else 1) - 1
    if int(seed) < 0 or last > MAX_SEED:
        highest = MAX_SEED - max(0, last - int(seed))
        raise BadInputError(
            f"The seed must be a whole number from 0 to {highest} (got {seed}): "
            "each image uses the next seed, and seeds are stored as 64-bit numbers."
        )


def emit_all(images: list[GeneratedImage], on_image: ImageCallback | None) -> list[GeneratedImage]:
    """Hand the images of a batch that finished together to ``on_image``, in order; returns them."""
    if on_image is not None:
        for image in images:
            on_image(image)
    return images


@dataclass
class GeneratedImage:
    """An image and everything needed to reproduce and explain it.

    ``params`` are JSON-serialisable generation settings (written into the PNG).
    ``arrays`` are numeric side results (e.g. per-pixel sources) saved next to the image.
    """

    image: Image.Image
    seed: int
    engine: str
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class Engine(ABC):
    """Base class of all engines."""

    #: short id used on the command line and in the store (e.g. ``"local-score"``)
    name: str = ""
    #: one line for the UI
    label: str = ""

    @abstractmethod
    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_image: ImageCallback | None = None,
    ) -> list[GeneratedImage]:
        """Make ``request.count`` images. Raises :class:`~core.errors.MosaicError` on bad input.

        ``on_image`` receives every image as soon as it is finished (engines that make a batch at once
        hand over its images together when the batch is done), before the engine starts on the next.
        """
