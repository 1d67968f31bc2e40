"""Generate and save image by image, so that a stopped run keeps every image it finished."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from core.engines.base import CancelToken, Engine, GeneratedImage, GenerationRequest, Progress, ProgressCallback
from core.store import GenerationRecord, Store

logger = logging.getLogger(__name__)


def generate_and_save(
    engine: Engine,
    request: GenerationRequest,
    store: Store,
    title: str = "",
    batch_id: str | None = None,
    on_saved: Callable[[GenerationRecord], None] | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[GenerationRecord]:
    """Make ``request.count`` images one seed at a time; each is in the gallery before the next starts.

    Every image of a batch is reproducible from its own seed (``GenerationRequest.seeds``), so one
    image per call gives the same pictures as one call for all.
    """
    seeds = request.seeds()
    records: list[GenerationRecord] = []
    for index, seed in enumerate(seeds):
        if cancel is not None:
            cancel.raise_if_cancelled()
        single = dataclasses.replace(request, seed=seed, count=1)

        def relay(progress: Progress, index: int = index) -> None:
            if on_progress is not None:
                message = progress.message
                if message.startswith("Image 1 of 1: "):  # the engine's own count of its one image
                    message = message[len("Image 1 of 1: ") :]
                if len(seeds) > 1:
                    message = f"Image {index + 1} of {len(seeds)}" + (f": {message}" if message else "")
                on_progress(dataclasses.replace(progress, image_index=index, count=len(seeds), message=message))

        def keep(image: GeneratedImage) -> None:
            record = store.save_one(image, title=title, batch_id=batch_id)
            records.append(record)
            if on_saved is not None:
                on_saved(record)

        engine.generate(single, on_progress=relay, cancel=cancel, on_image=keep)
    return records
