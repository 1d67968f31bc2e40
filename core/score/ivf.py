"""Inverted-file (IVF) evaluation of the equivariant local machines, for the approximate mode.

In ``els`` and ``bbels`` many pixels share one patch dictionary (a *class*: all positions for
``els``; the interior, or one edge row or column, for ``bbels``). For each class and patch size the
library patches are clustered once by k-means into lists of about :data:`LIST_SIZE` patches
(:func:`build_index`, cached per library in memory and, when a folder is given, on disk:
:mod:`core.score.index_store`). A pixel then compares with the patches of the
:data:`NPROBE` lists whose centres are nearest to its patch scaled back to the clean signal,
``Ω_p(x_t) / sqrt(ā)``, instead of with all of them: the softmax is exact over those patches and
ignores the rest (top-k patches per pixel, from an index). Pixels whose class has a single
position (the corners of ``bbels``) stay exact: a class of one list up to
:data:`SINGLES_MAX_PATCH`, above it the exact machine's box sums. With every list probed the
result is the exact machine's (the sampler uses that for its exact steps at indexed patch sizes).

An edge or corner class of ``bbels`` compares only the window of its patches that lies inside the
image (:func:`patch_window`): the rest is zero padding for all its queries and library patches.

The lists are visited one after another by the native kernel ``mosaic_ivf`` (``fold.c``): it
copies the patches of a list from the padded library images into cache, block by block, and folds
them into every pixel that probes the list (no copy of the patches is kept between steps); without
the kernel a PyTorch loop over the lists gives the same result.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from core.score import native
from core.score.kinds import PADDING, group_buckets
from core.score.local import local_score, pad, patch_grid
from core.score.memory import local_bytes_per_image, plan_chunks
from core.score.result import CancelCheck, DenoiseResult, raise_if_cancelled
from core.score.streaming import LOGIT_FLOOR, NativeSoftmax

if TYPE_CHECKING:
    from core.score.index_store import IndexStore

logger = logging.getLogger(__name__)

#: Kinds with shared patch dictionaries (the others have nothing to index).
IVF_KINDS = ("els", "bbels")
#: Library patches per list (k-means cluster), on average.
LIST_SIZE = 400
#: Most lists per class.
MAX_LISTS = 1024
#: Lists each pixel compares with.
NPROBE = 16
#: Pixels whose class has one position (``bbels`` corners) are indexed too up to this patch size
#: (one list: exact); above it the exact machine's box sums are cheaper than copying their patches.
SINGLES_MAX_PATCH = 15
#: k-means: iterations and the most patches it is trained on.
KMEANS_ITERATIONS = 6
KMEANS_SAMPLE = 8192


@dataclass(frozen=True)
class PatchIndex:
    """The lists of every class of one kind and patch size over one library.

    The library columns (one patch of one image) are sorted by list, every list padded to a
    multiple of 16 columns. Attributes:
        kind, patch_size: the machine and patch size.
        classes: ``flat`` ``(S,)`` positions ``y * width + x`` of each class (queries and library
            patches alike) and its ``(L, d)`` list centres (``d``: the class window's values).
        class_lists: index of the first list of each class.
        windows: the part ``(y0, rows, x0, cols)`` of the patch that each class compares (see
            :func:`patch_window`).
        list_block, list_cols: ``(L_total,)`` first block of 16 columns and columns of each list.
        list_window: ``(L_total, 4)`` the window of each list's class.
        image, y, x: ``(K,)`` library image and centre of each column (image -1: padding); ``(y, x)``
            is also the patch's top-left corner in the padded library.
        values: ``(C, K)`` the centre pixel of each column's patch.
        exact: whether some pixels (single-position classes) are left to the exact machine.
    """

    kind: str
    patch_size: int
    classes: list[tuple[torch.Tensor, torch.Tensor]]
    class_lists: list[int]
    windows: list[tuple[int, int, int, int]]
    list_block: torch.Tensor
    list_cols: torch.Tensor
    list_window: torch.Tensor
    image: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    values: torch.Tensor
    exact: bool


def nearest_centroid(vectors: torch.Tensor, centroids: torch.Tensor, part: int = 1024) -> torch.Tensor:
    """Index of the nearest centroid ``(M,)`` of every row of ``vectors``, ``part`` rows at a time
    into one reused, cache-sized buffer (fresh large buffers cost a page fault per page)."""
    norms, transposed = centroids.pow(2).sum(1), centroids.T.contiguous()
    buffer = vectors.new_empty(min(part, vectors.shape[0]), centroids.shape[0])
    out = torch.empty(vectors.shape[0], dtype=torch.long)
    for start in range(0, vectors.shape[0], part):
        rows = vectors[start : start + part]
        distance = buffer[: rows.shape[0]]
        torch.addmm(norms, rows, transposed, alpha=-2.0, out=distance)
        torch.argmin(distance, 1, out=out[start : start + rows.shape[0]])
    return out


def kmeans(vectors: torch.Tensor, lists: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic k-means: ``(centroids (L', d), assignment (M,))`` with no empty list (``L' <= lists``)."""
    generator = torch.Generator().manual_seed(seed)
    sample = vectors[torch.randperm(vectors.shape[0], generator=generator)[:KMEANS_SAMPLE]]
    centroids = sample[torch.randperm(sample.shape[0], generator=generator)[:lists]].clone()
    for _ in range(KMEANS_ITERATIONS):
        assign = nearest_centroid(sample, centroids)
        counts = torch.bincount(assign, minlength=centroids.shape[0])
        sums = torch.zeros_like(centroids).index_add_(0, assign, sample)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).to(sums.dtype)
    assign = nearest_centroid(vectors, centroids)
    used = torch.bincount(assign, minlength=centroids.shape[0]) > 0
    renumber = torch.cumsum(used.long(), 0) - 1
    return centroids[used].contiguous(), renumber[assign]


def class_positions(kind: str, height: int, width: int, patch_size: int) -> tuple[list[torch.Tensor], bool]:
    """Flat positions of every indexed class, and whether pixels are left to the exact machine
    (single-position classes above :data:`SINGLES_MAX_PATCH`)."""
    classes, exact = [], False
    for bucket in group_buckets(kind, height, width, patch_size):
        if bucket.size == 1 and patch_size > SINGLES_MAX_PATCH:
            exact = True
            continue
        classes.extend(bucket.flat)
    return classes, exact


def patch_window(kind: str, height: int, width: int, patch_size: int, flat: torch.Tensor) -> tuple[int, int, int, int]:
    """``(y0, rows, x0, cols)``: the part of the patches centred on the positions ``flat`` that can be
    non-zero. With zero padding (``bbels``) the rows and columns of a patch that fall outside the
    image are zero for every pixel of an edge or corner class, queries and library alike: they add
    nothing to a distance, so the class compares only the rest (up to half of a big patch)."""
    if PADDING[kind] == "circular":
        return 0, patch_size, 0, patch_size
    r = patch_size // 2
    ys, xs = flat // width, flat % width
    y0, y1 = int((r - ys).clamp_min(0).min()), int((height + r - ys).clamp_max(patch_size).max())
    x0, x1 = int((r - xs).clamp_min(0).min()), int((width + r - xs).clamp_max(patch_size).max())
    return y0, y1 - y0, x0, x1 - x0


def in_window(patches: torch.Tensor, window: tuple[int, int, int, int]) -> torch.Tensor:
    """``patches`` ``(..., C, P, P)`` cut to ``window`` and flattened: ``(..., C·rows·cols)``."""
    y0, rows, x0, cols = window
    return patches[..., y0 : y0 + rows, x0 : x0 + cols].flatten(-3)


def library_patches(
    library: torch.Tensor, kind: str, patch_size: int, flat: torch.Tensor, window: tuple[int, int, int, int]
) -> torch.Tensor:
    """``(N·S, d)`` patches (their ``window``) of every library image at the positions ``flat``,
    rows ``image * S + j``."""
    grid = patch_grid(pad(library, patch_size, PADDING[kind]), patch_size)  # (H, W, N, C, P, P)
    width = library.shape[3]
    picked = in_window(grid[flat // width, flat % width], window)  # (S, N, d)
    return picked.transpose(0, 1).reshape(flat.numel() * library.shape[0], -1)


def _padded_columns(counts: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``columns`` (sorted by list, ``counts`` per list) spread over lists padded to 16; -1 fills."""
    padded = (counts + 15) // 16 * 16
    slot = torch.arange(columns.numel()) + torch.repeat_interleave(
        (torch.cumsum(padded, 0) - padded) - (torch.cumsum(counts, 0) - counts), counts
    )
    out = torch.full((int(padded.sum()),), -1, dtype=torch.long)
    out[slot] = columns
    return out


def centre_values(library: torch.Tensor, image: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(C, K)`` the library pixel at the centre of each column's patch (0 on padding columns)."""
    return library[image.clamp_min(0), :, y, x].T * (image >= 0)


def build_index(library: torch.Tensor, kind: str, patch_size: int) -> PatchIndex:
    """Cluster the library patches of every class of ``kind`` at ``patch_size`` (see module doc)."""
    height, width = library.shape[2], library.shape[3]
    positions, exact = class_positions(kind, height, width, patch_size)
    classes, class_lists, windows, counts, columns = [], [], [], [], []
    for flat in positions:
        windows.append(patch_window(kind, height, width, patch_size, flat))
        vectors = library_patches(library, kind, patch_size, flat, windows[-1])
        lists = max(1, min(MAX_LISTS, vectors.shape[0] // LIST_SIZE))
        centroids, assign = kmeans(vectors, lists)
        class_lists.append(sum(c.shape[0] for _, c in classes))
        classes.append((flat, centroids))
        counts.append(torch.bincount(assign, minlength=centroids.shape[0]))
        columns.append(_padded_columns(counts[-1], torch.argsort(assign, stable=True)))  # image * S + j, or -1
    images, flats = [], []
    for col, (flat, _) in zip(columns, classes, strict=True):
        images.append(torch.where(col >= 0, col // flat.numel(), -1))
        flats.append(torch.where(col >= 0, flat[col.clamp_min(0) % flat.numel()], 0))
    image, position = torch.cat(images), torch.cat(flats)
    y, x = position // width, position % width
    values = centre_values(library, image, y, x)
    list_cols = torch.cat(counts).long()
    blocks = (list_cols + 15) // 16
    list_window = torch.tensor(windows, dtype=torch.long).repeat_interleave(torch.tensor([len(c) for c in counts]), 0)
    return PatchIndex(
        kind, patch_size, classes, class_lists, windows, (torch.cumsum(blocks, 0) - blocks).contiguous(),
        list_cols.contiguous(), list_window.contiguous(), image.contiguous(), y.contiguous(), x.contiguous(),
        values.contiguous(), exact,
    )


def fingerprint(library: torch.Tensor) -> str:
    """Content hash of a library tensor (the index cache key)."""
    data = library.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest() + str(tuple(library.shape))


class IndexCache:
    """Indexes of recent (library, kind, patch size), shared by every run of this process."""

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str, int], PatchIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[str, str, int], threading.Lock] = {}

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def has(self, key: str, kind: str, patch_size: int) -> bool:
        """Whether the index of the library with content hash ``key`` is in memory."""
        with self._lock:
            return (key, kind, patch_size) in self._items

    def get(
        self, library: torch.Tensor, key: str, kind: str, patch_size: int, store: IndexStore | None = None
    ) -> PatchIndex:
        """The index of ``library`` (content hash ``key``, see :func:`fingerprint`): from memory, else
        from ``store`` (:class:`~core.score.index_store.IndexStore`), else built (and stored there);
        workers asking for the same index while it is built wait for it."""
        full_key = (key, kind, patch_size)
        with self._lock:
            building = self._building.setdefault(full_key, threading.Lock())
        with building:
            with self._lock:
                if full_key in self._items:
                    self._items.move_to_end(full_key)
                    return self._items[full_key]
            index = store.load(library, key, kind, patch_size) if store is not None else None
            if index is None:
                logger.info("indexing %d library images for %s patches of %d px", library.shape[0], kind, patch_size)
                index = build_index(library, kind, patch_size)
                if store is not None:
                    store.save(key, index)
            with self._lock:
                self._items[full_key] = index
                self._building.pop(full_key, None)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return index


INDEXES = IndexCache()


def _probe(
    x_grid: torch.Tensor, index: PatchIndex, a: float, c: float, nprobe: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries ``(R, C·P·P + 1)`` of all indexed pixels (rows: class by class, position, sample),
    their flat positions ``(R,)``, and the (query row, global list) pairs to fold: each row with
    the ``nprobe`` (default :func:`probes_for`) lists of its class (or all of them, if fewer) whose
    centres are nearest to it. A query row starts with ``[2ac·q, -a²c]``, ``q`` its patch's class
    window (the logit of a library patch ``φ`` is its dot product with ``[φ, ‖φ‖²]``)."""
    width, batch = x_grid.shape[1], x_grid.shape[2]
    dim = x_grid[0, 0, 0].numel()
    queries, flats, pair_rows, pair_lists = [], [], [], []
    rows = 0
    classes = zip(index.classes, index.class_lists, index.windows, strict=True)
    for (flat, centroids), first_list, window in classes:
        q = in_window(x_grid[flat // width, flat % width], window).reshape(flat.numel() * batch, -1)
        distance = centroids.pow(2).sum(1) - (2.0 / a) * (q @ centroids.T)
        lists = centroids.shape[0]
        wanted = probes_for(index.patch_size, lists) if nprobe is None else nprobe
        if wanted >= lists:  # every list
            nearest = torch.arange(lists).expand(q.shape[0], lists)
        else:
            nearest = native.nearest(distance, wanted)
        augmented = q.new_zeros(q.shape[0], dim + 1)
        torch.mul(q, 2.0 * a * c, out=augmented[:, : q.shape[1]])
        augmented[:, q.shape[1]] = -a * a * c
        queries.append(augmented)
        flats.append(flat.repeat_interleave(batch))
        pair_rows.append((torch.arange(q.shape[0]) + rows).repeat_interleave(nearest.shape[1]))
        pair_lists.append(nearest.flatten() + first_list)
        rows += q.shape[0]
    return torch.cat(queries), torch.cat(flats), torch.cat(pair_rows), torch.cat(pair_lists)


def _fold_torch(
    state: NativeSoftmax,
    queries: torch.Tensor,
    padded: torch.Tensor,
    index: PatchIndex,
    pair_start: torch.Tensor,
    pair_rows: torch.Tensor,
) -> None:
    """The PyTorch path of ``mosaic_ivf``: the same fold into ``state`` (``G = 1``), list by list."""
    p = index.patch_size
    grid = padded.unfold(2, p, 1).unfold(3, p, 1)  # (N, C, H, W, P, P)
    m, s, t = state.m.view(-1), state.s.view(-1), state.t.view(-1)
    v, best = state.v.view(m.numel(), -1), state.best.view(-1)
    for lst in range(index.list_block.numel()):
        members = pair_rows[int(pair_start[lst]) : int(pair_start[lst + 1])]
        if members.numel() == 0:
            continue
        first = int(index.list_block[lst]) * 16
        cols = torch.arange(first, first + int(index.list_cols[lst]))
        window = tuple(int(w) for w in index.list_window[lst])
        patches = in_window(grid[index.image[cols], :, index.y[cols], index.x[cols]], window)
        augmented = torch.cat([patches, patches.pow(2).sum(1, keepdim=True)], 1)
        logits = queries[members, : augmented.shape[1]] @ augmented.T
        top, where = logits.max(1)
        new_m = torch.maximum(m[members], top)
        shift = (logits - new_m.unsqueeze(1)).clamp_min(LOGIT_FLOOR)
        e = torch.exp(shift) * (shift > LOGIT_FLOOR)
        old = (m[members] - new_m).clamp_min(LOGIT_FLOOR)
        scale = torch.exp(old) * (old > LOGIT_FLOOR)
        t[members] = scale * (t[members] + old * s[members]) + (e * shift).sum(1)
        s[members] = scale * s[members] + e.sum(1)
        v[members] = scale.unsqueeze(1) * v[members] + e @ index.values[:, cols].T
        best[members] = torch.where(top > m[members], cols[where], best[members])
        m[members] = new_m


def padded_library(library: torch.Tensor, kind: str, patch_size: int) -> torch.Tensor:
    """``library`` padded for ``patch_size`` as ``kind`` pads it, followed by the readable floats the
    kernel needs (:func:`core.score.native.with_read_slack`)."""
    return native.with_read_slack(pad(library, patch_size, PADDING[kind]))


def probes_for(patch_size: int, lists: int) -> int:
    """Lists each pixel of a class with ``lists`` lists compares with at ``patch_size``."""
    return NPROBE


def ivf_denoise(
    x: torch.Tensor,
    ab: float,
    library: torch.Tensor,
    index: PatchIndex,
    budget: int,
    should_cancel: CancelCheck | None,
    nprobe: int | None = None,
    padded: torch.Tensor | None = None,
) -> DenoiseResult:
    """One approximate machine evaluation of ``x`` ``(B, C, H, W)`` against ``library`` (CPU);
    every indexed pixel compares with ``nprobe`` lists (default :func:`probes_for`). ``padded``:
    :func:`padded_library` of ``library`` at this patch size, if the caller keeps it between steps."""
    raise_if_cancelled(should_cancel)
    batch, channels, height, width = x.shape
    kind, patch_size = index.kind, index.patch_size
    a, c = math.sqrt(ab), 1.0 / (2.0 * (1.0 - ab))
    if index.exact:
        per_image = local_bytes_per_image(channels, height, width, patch_size, batch, kind)
        plan = plan_chunks(budget, x.device, per_image, library.shape[0])
        result = local_score(x, library, ab, kind, patch_size, plan, should_cancel, singles_only=True)
        x0 = result.x0.view(batch, channels, -1)
        sources, entropy = result.sources.view(batch, -1, 3), result.entropy.view(batch, -1)
    else:
        x0 = x.new_empty(batch, channels, height * width)
        sources = torch.empty(batch, height * width, 3, dtype=torch.long)
        entropy = x.new_empty(batch, height * width)
    x_grid = patch_grid(pad(x, patch_size, PADDING[kind]), patch_size)  # (H, W, B, C, P, P)
    augmented, flats, rows_of_pairs, pair_list = _probe(x_grid, index, a, c, nprobe)
    rows = augmented.shape[0]
    pair_rows = rows_of_pairs[torch.argsort(pair_list, stable=True)].contiguous()
    counts = torch.bincount(pair_list, minlength=index.list_block.numel())
    pair_start = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]).contiguous()
    raise_if_cancelled(should_cancel)
    if padded is None:
        padded = padded_library(library, kind, patch_size)
    state = NativeSoftmax(1, rows, channels, augmented)
    if native.available(x.device):
        layout = native.IvfLayout(
            padded, patch_size, (index.image, index.y, index.x), (index.list_block, index.list_cols, index.list_window),
            (pair_start, pair_rows), index.values,
        )
        state.update_ivf(augmented, layout)
    else:
        _fold_torch(state, augmented, padded, index, pair_start, pair_rows)
    sample = torch.arange(rows) % batch
    x0[sample, :, flats] = state.mean().view(rows, channels)
    entropy[sample, flats] = state.entropy().view(-1)
    best = state.best.view(-1)
    sources[sample, flats] = torch.stack([index.image[best], index.y[best], index.x[best]], 1)
    return DenoiseResult(
        x0=x0.view(batch, channels, height, width),
        sources=sources.view(batch, height, width, 3),
        entropy=entropy.view(batch, height, width),
    )
