"""Exact softmax-weighted averages over logits that arrive in column chunks.

For every row (one query pixel) the accumulator keeps, over all columns (library patches) seen:

* ``m`` – the running maximum logit and ``best`` – the column where it was first reached,
* ``s = Σ exp(l - m)``,
* ``t = Σ exp(l - m) · (l - m)`` (for the entropy),
* ``v = Σ exp(l - m) · value`` (the weighted sum of the patch centres).

When a chunk raises the maximum, the old sums are rescaled. At the end the weights are
``w = exp(l - m) / s``, the mean is ``v / s`` and the entropy is ``log s - t / s`` nats.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Maps column indices of a chunk (as found by ``argmax``) to global library-patch ids.
ColumnMap = Callable[[torch.Tensor], torch.Tensor]


class StreamingSoftmax:
    """Running log-sum-exp state of ``rows_shape`` rows with ``value_dim`` values per column."""

    def __init__(self) -> None:
        self.m: torch.Tensor | None = None
        self.s: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.best: torch.Tensor | None = None

    def update(
        self, logits: torch.Tensor, exp_buffer: torch.Tensor, values: torch.Tensor, to_global: ColumnMap
    ) -> None:
        """Fold one chunk in.

        Args:
            logits: ``(G, R, K)`` logits of this chunk; overwritten.
            exp_buffer: ``(G, R, K)`` scratch space of the same shape.
            values: ``(G, K, V + 1)``: the values of each column, then a column of ones (gives ``s``).
            to_global: maps the chunk's column indices to global ids (stored in ``best``).
        """
        chunk_max, chunk_arg = logits.max(dim=-1)
        chunk_arg = to_global(chunk_arg)
        if self.m is None:
            new_m = chunk_max
        else:
            new_m = torch.maximum(self.m, chunk_max)
        logits.sub_(new_m.unsqueeze(-1))
        torch.exp(logits, out=exp_buffer)
        summed = torch.bmm(exp_buffer, values)  # (G, R, V + 1)
        chunk_t = logits.mul_(exp_buffer).sum(dim=-1)
        chunk_s = summed[..., -1]
        chunk_v = summed[..., :-1]
        if self.m is None:
            self.m, self.s, self.t, self.v, self.best = new_m, chunk_s, chunk_t, chunk_v, chunk_arg
            return
        assert self.s is not None and self.t is not None and self.v is not None and self.best is not None
        shift = self.m - new_m  # ≤ 0
        scale = torch.exp(shift)
        self.t = scale * (self.t + shift * self.s) + chunk_t
        self.s = scale * self.s + chunk_s
        self.v = scale.unsqueeze(-1) * self.v + chunk_v
        self.best = torch.where(chunk_max > self.m, chunk_arg, self.best)
        self.m = new_m

    def mean(self) -> torch.Tensor:
        """``(G, R, V)`` softmax-weighted mean of the values."""
        assert self.v is not None and self.s is not None
        return self.v / self.s.unsqueeze(-1)

    def entropy(self) -> torch.Tensor:
        """``(G, R)`` entropy of the weights in nats."""
        assert self.s is not None and self.t is not None
        return (torch.log(self.s) - self.t / self.s).clamp_min_(0.0)
