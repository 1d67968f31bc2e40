"""Capturing the scheduler's clean-latent predictions (x0) along a run, for the analyzer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

logger = logging.getLogger(__name__)


def _x0_of(scheduler: Any, output: Any) -> torch.Tensor | None:
    x0 = getattr(output, "pred_original_sample", None)
    if x0 is not None:
        return x0
    # DPM-Solver++ and UniPC keep their x0 predictions in model_outputs
    outputs = getattr(scheduler, "model_outputs", None)
    predicts_x0 = scheduler.config.get("algorithm_type", "") in ("dpmsolver++", "sde-dpmsolver++") or bool(
        scheduler.config.get("predict_x0", False)
    )
    if outputs and predicts_x0 and outputs[-1] is not None:
        return outputs[-1]
    return None


@contextmanager
def capture_x0(scheduler: Any, sink: list[torch.Tensor]) -> Iterator[None]:
    """While active, every ``scheduler.step`` appends its x0 prediction (first sample, CPU) to ``sink``."""
    original = scheduler.step

    def step(*args: Any, **kwargs: Any) -> Any:
        return_dict = kwargs.pop("return_dict", True)
        output = original(*args, return_dict=True, **kwargs)
        x0 = _x0_of(scheduler, output)
        if x0 is not None:
            sink.append(x0[:1].detach().to("cpu", torch.float32))
        if return_dict:
            return output
        return (output.prev_sample,) if x0 is None else (output.prev_sample, x0)

    scheduler.step = step
    try:
        yield
    finally:
        del scheduler.step  # back to the class method
