"""Without a working C compiler the machines fall back to the PyTorch path, with a warning."""

from __future__ import annotations

import logging

import torch

from core.score import denoise, native


def test_broken_compiler_falls_back_to_pytorch(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(native.NATIVE_ENV, "1")
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CC", "false")  # exits 1: the build fails
    native.reset()
    with caplog.at_level(logging.WARNING, logger="core.score.native"):
        assert native.kernel() is None
    assert "using the PyTorch path" in caplog.text
    library = torch.rand(2, 1, 5, 5) * 2 - 1
    result = denoise(torch.randn(1, 1, 5, 5), 0.5, library, "bbels", 3)
    assert torch.isfinite(result.x0).all()
    native.reset()


def test_nearest_without_the_kernel_is_topk(monkeypatch):
    monkeypatch.setenv(native.NATIVE_ENV, "0")
    native.reset()
    distance = torch.randn(9, 30, generator=torch.Generator().manual_seed(3))
    assert torch.equal(native.nearest(distance, 4), distance.topk(4, 1, largest=False).indices)
    native.reset()
