"""Tiled logits: one batched product per tile of rows × columns, folded into streaming softmaxes."""

from __future__ import annotations

import torch

from core.score import native
from core.score.result import CancelCheck, raise_if_cancelled
from core.score.streaming import ColumnMap, NativeSoftmax, StreamingSoftmax

# The weighted sum of centres is a bmm with few columns; BLAS is faster with at least this many.
_MIN_VALUE_COLUMNS = 16
#: Query vectors (``d + 2`` with the bias columns) up to this length use the fused native kernel,
#: longer ones a BLAS GEMM per tile followed by the native fold: 64 with the wide AVX-512 tile, 32
#: with the narrow one (measured against MKL on the 2-core development CPU, BENCHMARKS.md).
FUSED_MAX_DIM = 64
FUSED_MAX_DIM_NARROW = 32
#: Library columns per fused-kernel call: about 512 KB of ``(d + 2) × K`` library values.
FUSED_TILE_FLOATS = 128 * 1024


def values_with_ones(centres: torch.Tensor) -> torch.Tensor:
    """``(G, K, V)`` -> ``(G, K, max(V + 1, 16))``: the values, zero padding, a last column of ones."""
    groups, columns, dim = centres.shape
    width = max(dim + 1, _MIN_VALUE_COLUMNS)
    values = centres.new_zeros(groups, columns, width)
    values[..., :dim] = centres
    values[..., -1] = 1.0
    return values


def row_tile(groups: int, rows: int, columns: int, tile_elements: int) -> int:
    """Rows per tile: all rows if a tile still has ≥ 256 columns (or all of them), else fewer."""
    wanted_columns = min(columns, 256)
    if groups * rows * wanted_columns <= tile_elements:
        return rows
    return max(1, tile_elements // (groups * wanted_columns))


class GroupRun:
    """Streaming state of one group bucket: its queries, row tiles and one accumulator per tile.

    Logits of a tile come out of one ``bmm`` of augmented operands, ``[q, 1, -m] · [φ, b, 1]ᵀ``:
    queries ``q`` are pre-scaled by ``2a / (2(1 - ā))``, the bias is ``b = -a² ‖φ‖² / (2(1 - ā))``
    and ``m`` is the running maximum of each row, so the GEMM writes ``l - m`` directly (no bias
    copy, no separate shift pass; see :meth:`StreamingSoftmax.update`).

    With the native kernels (:mod:`core.score.native`, CPU) the ``-m`` column stays 0: short query
    vectors (``d + 2 <= FUSED_MAX_DIM``) are folded by the fused kernel, which computes the logits
    itself; longer ones get a BLAS GEMM per tile and :func:`core.score.native.fold`.
    """

    def __init__(self, queries: torch.Tensor, value_dim: int, rows_per_tile: int, tile_elements: int) -> None:
        groups, rows, dim = queries.shape
        self.queries = queries.new_zeros(groups, rows, dim + 2)  # (G, R, d + 2): [q, 1, -m]
        self.queries[..., :dim] = queries
        self.queries[..., dim] = 1.0
        self.value_dim = value_dim
        self.row_tile = max(1, min(rows, rows_per_tile))
        self.starts = list(range(0, rows, self.row_tile))
        self.native = native.available(queries.device)
        longest = FUSED_MAX_DIM if self.native and native.fused_wide() else FUSED_MAX_DIM_NARROW
        self.fused = self.native and dim + 2 <= min(longest, native.FUSED_MAX_DIM)
        if self.fused:  # one state over all rows; the kernel blocks rows itself
            self.row_tile = rows
            self.starts = [0]
        self.states: list[StreamingSoftmax | NativeSoftmax]
        if self.native:
            self.states = [
                NativeSoftmax(groups, min(rows, start + self.row_tile) - start, value_dim, queries)
                for start in self.starts
            ]
        else:
            self.states = [StreamingSoftmax() for _ in self.starts]
        self.col_tile = max(1, tile_elements // (groups * self.row_tile))
        if self.fused:
            self.col_tile = max(256, FUSED_TILE_FLOATS // (dim + 2)) // 16 * 16
        self._logits: torch.Tensor | None = None
        self._exps: torch.Tensor | None = None

    def _buffers(self, numel: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._logits is None or self._logits.numel() < numel:
            self._logits = self.queries.new_empty(numel)
            self._exps = self.queries.new_empty(numel)
        assert self._exps is not None
        return self._logits[:numel], self._exps[:numel]

    def add_chunk(
        self,
        library_t: torch.Tensor,
        bias: torch.Tensor,
        values: torch.Tensor,
        to_global: ColumnMap,
        should_cancel: CancelCheck | None,
    ) -> None:
        """Fold library columns ``library_t`` ``(G, K, d)`` with bias ``(G, 1, K)`` and values
        ``(G, K, V')`` into every row tile; ``to_global`` maps chunk columns to global ids."""
        groups, columns, _ = library_t.shape
        library = torch.cat([library_t, bias.transpose(1, 2), bias.new_ones(groups, columns, 1)], dim=-1)
        self.add_augmented(library, values, to_global, should_cancel)

    def add_augmented(
        self, library: torch.Tensor, values: torch.Tensor, to_global: ColumnMap, should_cancel: CancelCheck | None
    ) -> None:
        """Like :meth:`add_chunk`, with the columns already augmented: ``library`` is ``(G, K, d + 2)``
        holding ``[φ, bias, 1]`` (lets callers build it with a single copy)."""
        groups, rows, _ = self.queries.shape
        columns = library.shape[1]
        values_t = values[..., : self.value_dim].transpose(1, 2).contiguous() if self.native else None
        if self.fused:
            assert values_t is not None
            state = self.states[0]
            assert isinstance(state, NativeSoftmax)
            library_panel = native.panel(library)
            for k0 in range(0, columns, self.col_tile):
                raise_if_cancelled(should_cancel)
                k1 = min(columns, k0 + self.col_tile)
                state.update_fused(
                    self.queries,
                    library_panel[:, k0 // 16 :],
                    k1 - k0,
                    values_t[:, :, k0:k1],
                    lambda arg, k0=k0: to_global(arg + k0),
                )
            return
        for k0 in range(0, columns, self.col_tile):
            k1 = min(columns, k0 + self.col_tile)
            lib_tile = library[:, k0:k1].transpose(1, 2)
            value_tile = values[:, k0:k1]

            def tile_to_global(arg: torch.Tensor, k0: int = k0) -> torch.Tensor:
                return to_global(arg + k0)

            for start, state in zip(self.starts, self.states, strict=True):
                raise_if_cancelled(should_cancel)
                stop = min(rows, start + self.row_tile)
                shape = (groups, stop - start, k1 - k0)
                logits, exps = self._buffers(shape[0] * shape[1] * shape[2])
                logits = logits.view(shape)
                queries = self.queries[:, start:stop]
                if isinstance(state, NativeSoftmax):
                    assert values_t is not None
                    torch.bmm(queries, lib_tile, out=logits)
                    state.update(logits, values_t[:, :, k0:k1], tile_to_global)
                    continue
                if state.m is not None:
                    queries[..., -1] = state.m.neg()
                torch.bmm(queries, lib_tile, out=logits)
                state.update(logits, exps.view(shape), value_tile, tile_to_global, shifted=state.m is not None)

    def add_logits(self, logits: torch.Tensor, values: torch.Tensor, to_global: ColumnMap) -> None:
        """Fold precomputed logits ``(G, R, K)`` (overwritten) into the state (single row tile)."""
        assert len(self.states) == 1
        state = self.states[0]
        if isinstance(state, NativeSoftmax):
            state.update(logits.contiguous(), values[..., : self.value_dim].transpose(1, 2).contiguous(), to_global)
            return
        _, exps = self._buffers(logits.numel())
        self.states[0].update(logits, exps.view(logits.shape), values, to_global)

    def results(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(G, R, V)`` means, ``(G, R)`` best global ids and ``(G, R)`` entropies (nats)."""
        means = torch.cat([s.mean()[..., : self.value_dim] for s in self.states], dim=1)
        best = torch.cat([s.best for s in self.states], dim=1)  # type: ignore[misc]
        entropy = torch.cat([s.entropy() for s in self.states], dim=1)
        return means, best, entropy
