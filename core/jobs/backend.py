"""Where jobs run: local worker processes (the default) or a Ray cluster (``MOSAIC_RAY_ADDRESS``)."""

from __future__ import annotations

import os

RAY_ADDRESS_ENV = "MOSAIC_RAY_ADDRESS"
WORKERS_ENV = "MOSAIC_WORKERS"


def ray_address() -> str | None:
    """``auto`` or ``ray://host:port`` when jobs go to Ray; None for local workers."""
    value = (os.environ.get(RAY_ADDRESS_ENV) or "").strip()
    return value or None
