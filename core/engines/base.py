"""The interface every engine implements: a request in, images with metadata out.

An engine takes a :class:`GenerationRequest` (or an engine-specific subclass), reports progress
through a callback, honours a :class:`CancelToken`, and returns one :class:`GeneratedImage` per
requested image. Engines do not persist anything: the store does (:mod:`core.store`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from core.errors import GenerationCancelled


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
    ) -> list[GeneratedImage]:
        """Make ``request.count`` images. Raises :class:`~core.errors.MosaicError` on bad input."""
