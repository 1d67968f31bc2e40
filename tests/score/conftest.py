"""Every machine test runs twice: with the native kernels (``core/score/fold.c``) and with the
PyTorch path (``MOSAIC_NATIVE=0``), which must give the same results."""

from __future__ import annotations

import pytest

from core.score import native


@pytest.fixture(autouse=True, params=["native", "torch"])
def softmax_path(request, monkeypatch):
    monkeypatch.setenv(native.NATIVE_ENV, "1" if request.param == "native" else "0")
    native.reset()
    yield request.param
    native.reset()
