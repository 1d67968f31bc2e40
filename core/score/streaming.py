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

from core.score import native

#: Maps column indices of a chunk (as found by ``argmax``) to global library-patch ids.
ColumnMap = Callable[[torch.Tensor], torch.Tensor]

#: Shifted logits are clamped here before ``exp``: ``exp(-80) ≈ 2e-35`` is still a normal float32,
#: and weights that small change no sum at float32 precision. Without the clamp, ``exp`` of very
#: negative arguments (underflow and denormal results) is ~10× slower on CPU, and at low noise most
#: logits are thousands below the maximum.
LOGIT_FLOOR = -80.0


class StreamingSoftmax:
    """Running log-sum-exp state of ``rows_shape`` rows with ``value_dim`` values per column."""

    def __init__(self) -> None:
        self.m: torch.Tensor | None = None
        self.s: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.best: torch.Tensor | None = None

    def update(
        self,
        logits: torch.Tensor,
        exp_buffer: torch.Tensor,
        values: torch.Tensor,
        to_global: ColumnMap,
        shifted: bool = False,
    ) -> None:
        """Fold one chunk in.

        Args:
            logits: ``(G, R, K)`` logits of this chunk; overwritten. With ``shifted`` they are
                already relative to the running maximum (``l - m``), as the tiled GEMM produces them.
            exp_buffer: ``(G, R, K)`` scratch space of the same shape.
            values: ``(G, K, V + 1)``: the values of each column, then a column of ones (gives ``s``).
            to_global: maps the chunk's column indices to global ids (stored in ``best``).
            shifted: whether ``logits`` hold ``l - m`` (only once a chunk has been folded in).
        """
        if self.m is None:
            chunk_max, chunk_arg = logits.max(dim=-1)
            self.best = to_global(chunk_arg)
            self.m = chunk_max
            logits.sub_(chunk_max.unsqueeze(-1)).clamp_min_(LOGIT_FLOOR)
            torch.exp(logits, out=exp_buffer)
            summed = torch.bmm(exp_buffer, values)  # (G, R, V + 1)
            self.s = summed[..., -1]
            self.v = summed[..., :-1]
            self.t = logits.mul_(exp_buffer).sum(dim=-1)
            return
        assert self.s is not None and self.t is not None and self.v is not None and self.best is not None
        if not shifted:
            logits.sub_(self.m.unsqueeze(-1))
        # Relative maximum of the chunk: > 0 only on rows where this chunk raises the maximum. Only
        # those rows need an argmax (the first occurrence, as ``max`` gives) and a shift.
        rel_max = logits.amax(dim=-1)
        improved = torch.nonzero(rel_max.flatten() > 0).flatten()
        shift = None
        if improved.numel():
            width = logits.shape[-1]
            flat = logits.view(-1, width)
            delta = rel_max.clamp_min(0.0)
            picked = flat.index_select(0, improved)
            self.best.view(-1)[improved] = to_global(picked.argmax(dim=-1))
            if improved.numel() * 4 > flat.shape[0]:
                logits.sub_(delta.unsqueeze(-1))
            else:
                flat.index_copy_(0, improved, picked.sub_(delta.view(-1)[improved].unsqueeze(-1)))
            self.m = self.m + delta
            shift = delta.neg_()  # ≤ 0
        torch.exp(logits.clamp_min_(LOGIT_FLOOR), out=exp_buffer)
        summed = torch.bmm(exp_buffer, values)  # (G, R, V + 1)
        chunk_t = logits.mul_(exp_buffer).sum(dim=-1)
        if shift is None:
            self.t += chunk_t
            self.s += summed[..., -1]
            self.v += summed[..., :-1]
            return
        scale = torch.exp(shift)
        self.t = scale * (self.t + shift * self.s) + chunk_t
        self.s = scale * self.s + summed[..., -1]
        self.v = scale.unsqueeze(-1) * self.v + summed[..., :-1]

    def mean(self) -> torch.Tensor:
        """``(G, R, V)`` softmax-weighted mean of the values."""
        assert self.v is not None and self.s is not None
        return self.v / self.s.unsqueeze(-1)

    def entropy(self) -> torch.Tensor:
        """``(G, R)`` entropy of the weights in nats."""
        assert self.s is not None and self.t is not None
        return (torch.log(self.s) - self.t / self.s).clamp_min_(0.0)


class NativeSoftmax:
    """The same state as :class:`StreamingSoftmax`, folded by the native kernels (``fold.c``).

    Rows are updated in place by :func:`core.score.native.fold` (logits computed elsewhere) or
    :func:`core.score.native.fused` (logits computed in the kernel); ``v`` holds only the value
    channels (no column of ones: ``s`` is accumulated directly). Terms more than ``-LOGIT_FLOOR``
    below the maximum are dropped rather than clamped: the float32 sums are the same.
    """

    def __init__(self, groups: int, rows: int, value_dim: int, like: torch.Tensor) -> None:
        self.m = like.new_full((groups, rows), torch.finfo(torch.float32).min)
        self.s = like.new_zeros(groups, rows)
        self.t = like.new_zeros(groups, rows)
        self.v = like.new_zeros(groups, rows, value_dim)
        self.best = torch.zeros(groups, rows, dtype=torch.long, device=like.device)
        self._arg = torch.empty(groups, rows, dtype=torch.long, device=like.device)

    def update(self, logits: torch.Tensor, values_t: torch.Tensor, to_global: ColumnMap) -> None:
        """Fold raw (unshifted) ``logits`` ``(G, R, K)`` with value channels ``values_t`` ``(G, V, K)``."""
        self._arg.fill_(-1)
        native.fold(logits, values_t, self.m, self.s, self.t, self.v, self._arg, LOGIT_FLOOR)
        self._move_best(to_global)

    def update_fused(
        self,
        queries: torch.Tensor,
        library_panel: torch.Tensor,
        cols: int,
        values_t: torch.Tensor,
        to_global: ColumnMap,
    ) -> None:
        """Fold the logits of ``queries`` ``(G, R, D)`` against ``cols`` library columns laid out
        by :func:`core.score.native.panel`."""
        self._arg.fill_(-1)
        native.fused(queries, library_panel, cols, values_t, self.m, self.s, self.t, self.v, self._arg, LOGIT_FLOOR)
        self._move_best(to_global)

    def update_ivf(self, queries: torch.Tensor, layout: native.IvfLayout) -> None:
        """Fold every row (``G = 1``) over the library columns of the lists it probes
        (:func:`core.score.native.ivf`); ``best`` receives index columns."""
        rows = self.m.numel()
        self._arg.fill_(-1)
        state = (self.m.view(-1), self.s.view(-1), self.t.view(-1), self.v.view(rows, -1), self._arg.view(-1))
        native.ivf(queries, layout, *state, LOGIT_FLOOR)
        self._move_best(lambda arg: arg)

    def _move_best(self, to_global: ColumnMap) -> None:
        moved = torch.nonzero(self._arg.view(-1) >= 0).flatten()
        if moved.numel():
            self.best.view(-1)[moved] = to_global(self._arg.view(-1)[moved])

    def mean(self) -> torch.Tensor:
        return self.v / self.s.unsqueeze(-1)

    def entropy(self) -> torch.Tensor:
        return (torch.log(self.s) - self.t / self.s).clamp_min_(0.0)
