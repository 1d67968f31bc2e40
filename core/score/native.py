"""Optional native kernel for the exact streaming softmax (``fold.c``), loaded with ctypes.

The local score machines spend most of their time folding tiles of logits into the running
softmax state of each query pixel (max, exp, weighted sums). ``fold.c`` does that in two passes
over each row instead of the six PyTorch element-wise passes of
:meth:`core.score.streaming.StreamingSoftmax.update`, with the same arithmetic.

The kernel is compiled on first use with the system C compiler (``cc -O3 -march=native
-fopenmp``) into a cache folder and reused afterwards. It uses OpenMP from the ``libgomp`` that
PyTorch has already loaded, so both share one thread pool. Without a compiler (or with
``MOSAIC_NATIVE=0``) the machines use the PyTorch path: same results up to float32 rounding,
about twice slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: The floor of :data:`core.score.streaming.LOGIT_FLOOR` (not imported: streaming imports this module).
LOGIT_FLOOR_FOR_OFFSETS = -80.0


class PixelStateLike(Protocol):
    """The per-pixel softmax state that :func:`offsets` updates (``core.score.offsets.PixelSoftmax``)."""

    m: torch.Tensor
    s: torch.Tensor
    t: torch.Tensor
    v: torch.Tensor
    best: torch.Tensor

#: Set to ``0`` to never use the native kernel.
NATIVE_ENV = "MOSAIC_NATIVE"
#: Where compiled kernels are kept (default ``~/.cache/mosaic-studio/kernels``).
CACHE_ENV = "MOSAIC_KERNEL_CACHE"

SOURCE = Path(__file__).with_name("fold.c")
#: No -ffast-math: with it, GCC links crtfastmath.o, which flushes denormals for the whole process.
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared"]
FLAGS += ["-fno-math-errno", "-fno-trapping-math", "-ffinite-math-only", "-fno-signed-zeros", "-fassociative-math"]

_library: ctypes.CDLL | None = None
_tried = False
_lock = threading.Lock()


def _cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mosaic-studio" / "kernels"


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _compile(target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise OSError("no C compiler found")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"], check=True, capture_output=True)
        os.replace(built, target)  # atomic: a concurrent process never loads a half-written file


def _load() -> ctypes.CDLL | None:
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + _cpu_signature().encode()).hexdigest()
    target = _cache_dir() / f"fold-{key[:16]}.so"
    if not target.exists():
        logger.info("compiling the native softmax kernel into %s", target)
        _compile(target)
    lib = ctypes.CDLL(str(target))
    i64, f32, ptr, int_ = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int
    state = [ptr, ptr, ptr, ptr, ptr, f32, int_]  # m, s, t, v, arg, floor, threads
    lib.mosaic_fold.argtypes = [ptr, ptr, i64, i64, i64, i64, i64, i64, *state]
    lib.mosaic_fold.restype = None
    lib.mosaic_fused.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, i64, i64, i64, *state]
    lib.mosaic_fused.restype = None
    lib.mosaic_fused_rows.argtypes = []
    lib.mosaic_fused_rows.restype = int_
    lib.mosaic_ivf.argtypes = [ptr, i64, ptr, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, ptr, i64,
                               i64, *state[:-1], ptr]
    lib.mosaic_ivf.restype = None
    lib.mosaic_nearest.argtypes = [ptr, i64, i64, i64, ptr]
    lib.mosaic_nearest.restype = None
    lib.mosaic_knn.argtypes = [ptr, i64, i64, ptr, ptr, i64, i64, ptr, ptr, int_]
    lib.mosaic_knn.restype = None
    lib.mosaic_knn_max_k.argtypes = []
    lib.mosaic_knn_max_k.restype = int_
    lib.mosaic_sq8_scan.argtypes = [ptr, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i64, ptr, i64, i64,
                                    ptr, ptr, int_]
    lib.mosaic_sq8_scan.restype = None
    lib.mosaic_offsets_scratch.argtypes = [i64, i64, i64]
    lib.mosaic_offsets_scratch.restype = i64
    lib.mosaic_offsets.argtypes = [ptr, i64, i64, i64, i64, ptr, i64, i64, i64, ptr, ptr, i64, i64, i64, ptr, i64,
                                   f32, f32, i64, *state[:5], f32, int_, ptr]
    lib.mosaic_offsets.restype = None
    lib.mosaic_shared_scratch.argtypes = [i64, i64, i64]
    lib.mosaic_shared_scratch.restype = i64
    lib.mosaic_shared.argtypes = [ptr, i64, i64, i64, i64, ptr, i64, i64, i64, ptr, ptr, i64, i64, i64, f32, f32, i64,
                                  *state[:5], f32, int_, ptr]
    lib.mosaic_shared.restype = None
    lib.mosaic_library_chunk.argtypes = [ptr, i64, i64, i64, i64, i64, int_, ptr, i64, i64, ptr, ptr, int_, ptr]
    lib.mosaic_library_chunk.restype = None
    return lib


def kernel() -> ctypes.CDLL | None:
    """The loaded kernel, or None when it is disabled or cannot be built here (logged once)."""
    global _library, _tried
    with _lock:  # the machines' worker threads may ask at the same time
        if _tried:
            return _library
        _tried = True
        if os.environ.get(NATIVE_ENV, "1") == "0":
            logger.info("native softmax kernel disabled by %s=0", NATIVE_ENV)
            return None
        try:
            _library = _load()
        except (OSError, subprocess.CalledProcessError) as exc:
            stderr = exc.stderr if isinstance(exc, subprocess.CalledProcessError) else None
            detail = stderr.decode(errors="replace")[-500:] if stderr else exc
            logger.warning("native softmax kernel unavailable (%s); using the PyTorch path", detail)
            _library = None
        return _library


def available(device: torch.device) -> bool:
    """Whether :func:`fold` can be used for tensors on ``device`` (CPU only)."""
    return device.type == "cpu" and kernel() is not None


def reset() -> None:
    """Forget the loaded kernel (tests switch ``MOSAIC_NATIVE`` between runs)."""
    global _library, _tried
    with _lock:
        _library, _tried = None, False


#: Longest query vector that :func:`fused` accepts (``MAX_DIM`` in ``fold.c``).
FUSED_MAX_DIM = 128


def fused_wide() -> bool:
    """Whether :func:`fused` runs the wide register tile (8 rows × 32 columns, AVX-512), which
    beats BLAS on longer vectors than the 4 × 16 tile does."""
    lib = kernel()
    return lib is not None and lib.mosaic_fused_rows() == 8


def _check_state(state: tuple[torch.Tensor, ...], values_t: torch.Tensor, groups: int, cols: int) -> None:
    for tensor in state:
        assert tensor.is_contiguous() and tensor.device.type == "cpu"
    assert state[-1].dtype == torch.int64 and values_t.dtype == torch.float32
    assert values_t.shape[0] == groups and values_t.shape[2] == cols
    assert (values_t.stride(2) == 1 or cols == 1) and values_t.device.type == "cpu"


def _state_args(
    m: torch.Tensor, s: torch.Tensor, t: torch.Tensor, v: torch.Tensor, arg: torch.Tensor, floor: float
) -> tuple[int, int, int, int, int, float, int]:
    """The trailing arguments shared by both kernels: state pointers, floor, threads."""
    return m.data_ptr(), s.data_ptr(), t.data_ptr(), v.data_ptr(), arg.data_ptr(), float(floor), torch.get_num_threads()


def fold(
    logits: torch.Tensor,
    values_t: torch.Tensor,
    m: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    v: torch.Tensor,
    arg: torch.Tensor,
    floor: float,
) -> None:
    """Fold ``logits`` ``(G, R, K)`` into the state ``m, s, t`` ``(G, R)`` and ``v`` ``(G, R, V)``.

    ``values_t`` is ``(G, V, K)``: the value channels of every column (a view with unit stride
    along ``K`` is enough). ``arg`` ``(G, R)`` int64 receives the column of each row's new
    maximum and is left alone on other rows. An empty state has ``m`` at the lowest float32 and
    ``s = t = v = 0``. The other tensors must be contiguous float32 on the CPU.
    """
    lib = kernel()
    assert lib is not None, "fold() called without an available kernel"
    groups, rows, cols = logits.shape
    assert logits.is_contiguous() and logits.dtype == torch.float32
    _check_state((m, s, t, v, arg), values_t, groups, cols)
    lib.mosaic_fold(
        logits.data_ptr(),
        values_t.data_ptr(),
        groups,
        rows,
        cols,
        values_t.shape[1],
        values_t.stride(0),
        values_t.stride(1),
        *_state_args(m, s, t, v, arg, floor),
    )


def panel(library: torch.Tensor) -> torch.Tensor:
    """``(G, K, D)`` library columns -> ``(G, ceil(K / 16), D, 16)``, the layout :func:`fused` reads."""
    groups, cols, dim = library.shape
    padded = -(-cols // 16) * 16
    if padded != cols:
        library = torch.cat([library, library.new_zeros(groups, padded - cols, dim)], dim=1)
    return library.view(groups, padded // 16, 16, dim).transpose(2, 3).contiguous()


def knn_max_k() -> int:
    """The most neighbours :func:`knn` returns per query (0 without the kernel)."""
    lib = kernel()
    return 0 if lib is None else int(lib.mosaic_knn_max_k())


def knn(
    queries: torch.Tensor, library_panel: torch.Tensor, norms: torch.Tensor, cols: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest of ``cols`` library vectors of every query by squared L2, exhaustive: ``(Q, k)``
    distances (ascending, clamped at 0) and column indices.

    ``queries`` ``(Q, D)`` float32, ``D <= FUSED_MAX_DIM``; ``library_panel`` the library in the layout
    of :func:`panel` (one group: ``(ceil(cols / 16), D, 16)``); ``norms`` ``(cols,)`` their squared norms;
    ``1 <= k <= min(cols, knn_max_k())``. The distances never form a ``(Q, cols)`` matrix."""
    lib = kernel()
    assert lib is not None, "knn() called without an available kernel"
    rows, dim = queries.shape
    assert 1 <= k <= min(cols, lib.mosaic_knn_max_k()) and dim <= FUSED_MAX_DIM
    assert library_panel.shape[1:] == (dim, 16) and library_panel.shape[0] * 16 >= cols
    assert library_panel.is_contiguous() and library_panel.dtype == torch.float32
    assert norms.is_contiguous() and norms.dtype == torch.float32 and norms.shape[0] >= cols
    queries = queries.contiguous()
    assert queries.dtype == torch.float32
    dist = torch.empty(rows, k)
    index = torch.empty(rows, k, dtype=torch.int64)
    if rows:
        lib.mosaic_knn(queries.data_ptr(), rows, dim, library_panel.data_ptr(), norms.data_ptr(), cols, k,
                       dist.data_ptr(), index.data_ptr(), torch.get_num_threads())
    return dist, index


def sq8_scan(
    queries: np.ndarray,
    lists: np.ndarray,
    centres: np.ndarray,
    data: np.ndarray,
    layout: np.ndarray,
    vmin: np.ndarray,
    vdiff: np.ndarray,
    k: int,
    active: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of every query among the vectors of the IVF lists it probes, the lists stored as FAISS
    stores an 8-bit ``IndexIVFScalarQuantizer`` (by residual) in one ``OnDiskInvertedLists`` file: ``(Q, k)``
    squared L2 distances (ascending; ``inf`` past what was found) and the vectors' ids (-1 there).

    ``queries`` ``(Q, D)`` float32; ``lists`` ``(Q, P)`` int64, the lists each query probes (-1: none);
    ``centres`` ``(nlist, D)`` the lists' centres; ``data`` the lists' file as uint8 (mapped); ``layout``
    ``(nlist, 3)`` int64: byte offset, size and capacity of every list in it; ``vmin``, ``vdiff`` ``(D,)`` the
    quantizer's ranges. ``1 <= k <= knn_max_k()``, ``D <= FUSED_MAX_DIM``. ``active``: the dimensions from this
    one on are zero padding in every centre and code (:func:`sq8_active_dims`); skipped where the queries are
    zero there too."""
    lib = kernel()
    assert lib is not None, "sq8_scan() called without an available kernel"
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    rows, dim = queries.shape
    assert 1 <= k <= lib.mosaic_knn_max_k() and dim <= FUSED_MAX_DIM
    assert centres.dtype == np.float32 and centres.flags.c_contiguous and centres.shape[1] == dim
    assert layout.dtype == np.int64 and layout.flags.c_contiguous and layout.shape == (centres.shape[0], 3)
    assert data.dtype == np.uint8 and vmin.shape == (dim,) and vdiff.shape == (dim,)
    flat = np.asarray(lists, dtype=np.int64).ravel()
    probing = flat >= 0
    if probing.any() and int(flat[probing].max()) >= layout.shape[0]:
        raise ValueError(f"a query probes list {int(flat.max())} of {layout.shape[0]}")
    pairs = np.nonzero(probing)[0]
    order = pairs[np.argsort(flat[pairs], kind="stable")]
    sorted_lists = flat[order]
    pair_query = np.ascontiguousarray(order // max(1, lists.shape[1]), dtype=np.int64)
    list_of, first = np.unique(sorted_lists, return_index=True)
    list_start = np.ascontiguousarray(np.append(first, sorted_lists.shape[0]), dtype=np.int64)
    list_of = np.ascontiguousarray(list_of, dtype=np.int64)
    offset, size, capacity = (np.ascontiguousarray(layout[:, i]) for i in range(3))
    vmin = np.ascontiguousarray(vmin, dtype=np.float32)
    vdiff = np.ascontiguousarray(vdiff, dtype=np.float32)
    dist = np.empty((rows, k), dtype=np.float32)
    ids = np.empty((rows, k), dtype=np.int64)
    if rows == 0:
        return dist, ids
    if active is None or not 0 < active < dim or queries[:, active:].any():
        active = dim
    lib.mosaic_sq8_scan(
        queries.ctypes.data, rows, dim, centres.ctypes.data, data.ctypes.data, offset.ctypes.data, size.ctypes.data,
        capacity.ctypes.data, vmin.ctypes.data, vdiff.ctypes.data, list_of.ctypes.data, list_start.ctypes.data,
        list_of.shape[0], pair_query.ctypes.data, active, k, dist.ctypes.data, ids.ctypes.data,
        torch.get_num_threads(),
    )
    dist[ids < 0] = np.inf
    return dist, ids


def sq8_active_dims(centres: np.ndarray, vmin: np.ndarray, vdiff: np.ndarray) -> int:
    """How many leading dimensions of 8-bit lists (:func:`sq8_scan`) hold anything: past them every centre is 0
    and every code decodes to 0 (the zero padding FAISS indexes get, ``core.analyzer.search.for_faiss``)."""
    used = (np.abs(centres).max(axis=0) > 0) | (vmin != 0) | (vdiff != 0)
    return int(np.nonzero(used)[0].max()) + 1 if used.any() else 1


def fused(
    queries: torch.Tensor,
    library_panel: torch.Tensor,
    cols: int,
    values_t: torch.Tensor,
    m: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    v: torch.Tensor,
    arg: torch.Tensor,
    floor: float,
) -> None:
    """Like :func:`fold`, with the logits ``queries @ library.T`` computed inside the kernel.

    ``queries`` ``(G, R, D)`` (rows contiguous), ``library_panel`` the first ``cols`` library
    columns in the layout of :func:`panel` (a slice of whole blocks along dim 1 is fine),
    ``D <= FUSED_MAX_DIM``.
    """
    lib = kernel()
    assert lib is not None, "fused() called without an available kernel"
    groups, rows, dim = queries.shape
    assert dim <= FUSED_MAX_DIM and library_panel.shape[0] == groups and library_panel.shape[2:] == (dim, 16)
    assert library_panel.shape[1] * 16 >= cols and library_panel[0].is_contiguous()
    assert queries.stride(2) == 1 and queries.stride(1) == dim and queries.dtype == torch.float32
    assert library_panel.dtype == torch.float32
    _check_state((m, s, t, v, arg), values_t, groups, cols)
    lib.mosaic_fused(
        queries.data_ptr(),
        library_panel.data_ptr(),
        values_t.data_ptr(),
        groups,
        rows,
        cols,
        dim,
        queries.stride(0),
        library_panel.stride(0),
        values_t.shape[1],
        values_t.stride(0),
        values_t.stride(1),
        *_state_args(m, s, t, v, arg, floor),
    )


#: Largest ``k`` for which :func:`nearest` uses the kernel (an insertion into a sorted list of ``k``).
NEAREST_MAX_K = 64


def nearest(distance: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices ``(rows, k)`` of the ``k`` smallest entries of every row of ``distance``
    ``(rows, cols)``, ascending (ties: lower column first); ``mosaic_nearest`` in ``fold.c``, or
    :func:`torch.topk` without the kernel or off the CPU. Much faster than ``topk`` for the small
    ``k`` of the patch index's probes."""
    rows, cols = distance.shape
    if not 1 <= k <= cols:
        raise ValueError(f"k must be between 1 and {cols} (got {k})")
    lib = kernel() if distance.device.type == "cpu" and k <= NEAREST_MAX_K else None
    if lib is None:
        return distance.topk(k, 1, largest=False).indices
    distance = distance.to(torch.float32).contiguous()
    out = torch.empty(rows, k, dtype=torch.int64)
    lib.mosaic_nearest(distance.data_ptr(), rows, cols, k, out.data_ptr())
    return out


#: Floats that :func:`ivf` may read past the end of its padded library (its patch copies move 8
#: floats at a time).
READ_SLACK = 8


def with_read_slack(images: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``images`` followed by :data:`READ_SLACK` readable floats, for :func:`ivf`."""
    buffer = images.new_zeros(images.numel() + READ_SLACK)
    view = buffer[: images.numel()].view(images.shape)
    view.copy_(images)
    return view


class IvfLayout(NamedTuple):
    """The library side of :func:`ivf`, fixed for one step: ``padded`` ``(N, C, H', W')`` library
    images, followed by :data:`READ_SLACK` readable floats (:func:`with_read_slack`); ``patch`` the
    patch size; ``columns`` the image, top-left y and x ``(K,)`` of every library column (``K`` a
    multiple of 16, image -1 on padding); ``lists`` the first 16-column block, the column count and
    the compared window ``(y0, rows, x0, cols)`` of the patch ``(L, 4)`` of every list; ``pairs``
    ``(pair_start (L + 1,), pair_rows)``: the query rows of every list; ``values_t`` ``(V, K)``."""

    padded: torch.Tensor
    patch: int
    columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    lists: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    pairs: tuple[torch.Tensor, torch.Tensor]
    values_t: torch.Tensor


def ivf(
    queries: torch.Tensor,
    layout: IvfLayout,
    m: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    v: torch.Tensor,
    arg: torch.Tensor,
    floor: float,
) -> None:
    """Inverted-file fold (``mosaic_ivf`` in ``fold.c``, used by :mod:`core.score.ivf`).

    ``queries`` ``(R, C·P·P + 1)``: for the lists a row probes, its first ``C·rows·cols + 1``
    values (the list's window, see :class:`IvfLayout`), the rest unused. State as in :func:`fold`
    for ``(R,)`` rows (``v`` ``(R, V)``). ``arg`` receives columns.
    """
    padded, patch, columns, lists, pairs, values_t = layout
    lib = kernel()
    assert lib is not None, "ivf() called without an available kernel"
    rows, dim = queries.shape
    _, channels, hp, wp = padded.shape
    image, y, x = columns
    list_block, list_cols, list_window = lists
    pair_start, pair_rows = pairs
    assert dim == channels * patch * patch + 1 and image.numel() % 16 == 0
    assert list_window.shape == (list_block.numel(), 4)
    assert bool((list_window[:, 0] >= 0).all() and (list_window[:, 0] + list_window[:, 1] <= patch).all())
    assert bool((list_window[:, 2] >= 0).all() and (list_window[:, 2] + list_window[:, 3] <= patch).all())
    assert values_t.shape[1] == image.numel() and pair_start.numel() == list_block.numel() + 1
    for index in (image, y, x, list_block, list_cols, list_window, pair_start, pair_rows):
        assert index.dtype == torch.int64 and index.is_contiguous() and index.device.type == "cpu"
    for tensor in (queries, padded, values_t, m, s, t, v):
        assert tensor.dtype == torch.float32 and tensor.is_contiguous() and tensor.device.type == "cpu"
    assert m.numel() == rows and v.shape == (rows, values_t.shape[0]) and arg.dtype == torch.int64
    slack = padded.untyped_storage().nbytes() // 4 - padded.storage_offset() - padded.numel()
    if slack < READ_SLACK:
        raise ValueError("ivf() needs READ_SLACK readable floats after padded: make it with with_read_slack()")
    most = int((pair_start[1:] - pair_start[:-1]).max()) if list_block.numel() else 0
    pitch = (dim + 14) // 8 * 8  # fold.c's patch-copy rows: dim + 7 rounded up to 8
    scratch = queries.new_empty(-(-most // 4) * 4 * (dim + 512) + 16 * dim + 16 * pitch)  # CHUNK = 512 in fold.c
    lib.mosaic_ivf(
        queries.data_ptr(), dim, padded.data_ptr(), channels, hp, wp,
        image.data_ptr(), y.data_ptr(), x.data_ptr(), list_block.data_ptr(), list_cols.data_ptr(),
        list_window.data_ptr(), list_block.numel(), pair_start.data_ptr(), pair_rows.data_ptr(),
        values_t.data_ptr(), values_t.shape[0], values_t.stride(0), *_state_args(m, s, t, v, arg, floor)[:-1],
        scratch.data_ptr(),
    )


def _scratch(function: str, height: int, width: int, patch_size: int) -> int:
    lib = kernel()
    assert lib is not None, f"{function}() called without an available kernel"
    return int(getattr(lib, function)(height, width, patch_size))


def offsets_scratch(height: int, width: int, patch_size: int) -> int:
    """Floats of scratch space one thread of :func:`offsets` needs."""
    return _scratch("mosaic_offsets_scratch", height, width, patch_size)


def _check_windows(
    x_win: torch.Tensor,
    lib_win: torch.Tensor,
    norms: torch.Tensor,
    centres: torch.Tensor,
    patch_size: int,
    state: PixelStateLike,
    scratch: torch.Tensor,
) -> None:
    """The layout :func:`offsets` and :func:`shared` read: float32 CPU tensors, contiguous, padded."""
    batch, channels, hq, wq = x_win.shape
    n, _, _, wl = lib_win.shape
    height, width = centres.shape[-2], centres.shape[-1] - 8
    for tensor in (x_win, lib_win, norms, centres, state.m, state.s, state.t, state.v, scratch):
        assert tensor.dtype == torch.float32 and tensor.is_contiguous() and tensor.device.type == "cpu"
    assert state.best.dtype == torch.int64 and state.best.is_contiguous()
    assert lib_win.shape[1] == channels and norms.shape == (n, height, width + 8) and centres.shape[:2] == (n, channels)
    assert state.m.shape == (batch, height, width + 8) and state.v.shape == (batch, channels, height, width + 8)
    assert hq >= height + patch_size - 1 and wq >= width + patch_size - 1 + 16 and wl >= width + patch_size - 1 + 16


def offsets(
    x_win: torch.Tensor,
    lib_win: torch.Tensor,
    norms: torch.Tensor,
    centres: torch.Tensor,
    descriptors: torch.Tensor,
    patch_size: int,
    k1: float,
    k2: float,
    first_image: int,
    state: PixelStateLike,
    scratch: torch.Tensor,
) -> None:
    """Fold the logits ``k1 · dot − k2 · ‖φ_q‖²`` of every descriptor (see
    :mod:`core.score.offsets`) of a library chunk into ``state`` (``mosaic_offsets`` in ``fold.c``).

    ``x_win`` ``(B, C, HQ, WQ)`` and ``lib_win`` ``(n, C, HL, WL)`` in window coordinates, ``norms``
    ``(n, H, W + 8)``, ``centres`` ``(n, C, H, W + 8)`` and the state ``(B, [C,] H, W + 8)`` with 8
    columns of padding (zeros in ``norms`` and ``centres``); ``scratch`` at least
    ``threads · offsets_scratch(H, W, P)`` floats. Library ids are ``(first_image + i) · H · W + q``.
    """
    lib = kernel()
    assert lib is not None, "offsets() called without an available kernel"
    batch, channels, hq, wq = x_win.shape
    n, _, hl, wl = lib_win.shape
    height, width = centres.shape[-2], centres.shape[-1] - 8
    threads = torch.get_num_threads()
    assert scratch.numel() >= threads * offsets_scratch(height, width, patch_size)
    assert descriptors.dtype == torch.int64 and descriptors.is_contiguous() and descriptors.shape[1] == 9
    _check_windows(x_win, lib_win, norms, centres, patch_size, state, scratch)
    lib.mosaic_offsets(
        x_win.data_ptr(), batch, channels, hq, wq, lib_win.data_ptr(), n, hl, wl, norms.data_ptr(),
        centres.data_ptr(), height, width, patch_size, descriptors.data_ptr(), descriptors.shape[0], float(k1),
        float(k2), first_image, state.m.data_ptr(), state.s.data_ptr(), state.t.data_ptr(), state.v.data_ptr(),
        state.best.data_ptr(), float(LOGIT_FLOOR_FOR_OFFSETS), threads, scratch.data_ptr(),
    )


#: Most channels :func:`shared` folds (``SHARED_MAX_CHANNELS`` in ``fold.c``).
SHARED_MAX_CHANNELS = 4


def shared_applies(kind: str, channels: int, height: int, width: int, patch_size: int) -> bool:
    """Whether :func:`shared` can take the shared block of a step: ``bbels`` with an odd patch smaller
    than the image and at most :data:`SHARED_MAX_CHANNELS` channels."""
    r = patch_size // 2
    return (
        kind == "bbels" and patch_size % 2 == 1 and 2 * r < min(height, width) and channels <= SHARED_MAX_CHANNELS
    )


def shared_scratch(height: int, width: int, patch_size: int) -> int:
    """Floats of scratch space one thread of :func:`shared` needs."""
    return _scratch("mosaic_shared_scratch", height, width, patch_size)


def shared(
    x_win: torch.Tensor,
    lib_win: torch.Tensor,
    norms: torch.Tensor,
    centres: torch.Tensor,
    patch_size: int,
    k1: float,
    k2: float,
    first_image: int,
    state: PixelStateLike,
    scratch: torch.Tensor,
) -> None:
    """Fold the pairs of ``bbels``'s shared block (interior pixel, interior library position) of a
    library chunk into ``state`` (``mosaic_shared`` in ``fold.c``): the same arguments and results as
    :func:`offsets` given those descriptors, computed along library rows. ``scratch`` at least
    ``threads · shared_scratch(H, W, P)`` floats."""
    lib = kernel()
    assert lib is not None, "shared() called without an available kernel"
    batch, channels, hq, wq = x_win.shape
    n, _, hl, wl = lib_win.shape
    height, width = centres.shape[-2], centres.shape[-1] - 8
    assert shared_applies("bbels", channels, height, width, patch_size)
    threads = torch.get_num_threads()
    assert scratch.numel() >= threads * shared_scratch(height, width, patch_size)
    _check_windows(x_win, lib_win, norms, centres, patch_size, state, scratch)
    lib.mosaic_shared(
        x_win.data_ptr(), batch, channels, hq, wq, lib_win.data_ptr(), n, hl, wl, norms.data_ptr(),
        centres.data_ptr(), height, width, patch_size, float(k1), float(k2), first_image, state.m.data_ptr(),
        state.s.data_ptr(), state.t.data_ptr(), state.v.data_ptr(), state.best.data_ptr(),
        float(LOGIT_FLOOR_FOR_OFFSETS), threads, scratch.data_ptr(),
    )


def library_chunk(
    chunk: torch.Tensor, patch_size: int, circular: bool, slack: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The library images ``chunk`` ``(n, C, H, W)`` as :func:`offsets` and :func:`shared` read them, in one
    pass (``mosaic_library_chunk`` in ``fold.c``): their windows (zero-padded by ``P // 2``, or tiled circularly
    for ``els``; ``slack`` zero columns after), the squared norms of their patches ``(n, H, W + 8)`` and their
    centres ``(n, C, H, W + 8)``. Same values as :func:`core.score.offsets.library_windows` and
    :func:`core.score.offsets.patch_norms` (float64 sums) padded."""
    lib = kernel()
    assert lib is not None, "library_chunk() called without an available kernel"
    chunk = chunk.contiguous()
    assert chunk.dtype == torch.float32 and chunk.device.type == "cpu"
    n, channels, height, width = chunk.shape
    grow = 2 if circular else 1
    hl, wl = grow * height + patch_size - 1, grow * width + patch_size - 1 + slack
    windows = chunk.new_empty(n, channels, hl, wl)
    norms = chunk.new_empty(n, height, width + 8)
    centres = chunk.new_empty(n, channels, height, width + 8)
    threads = max(1, min(torch.get_num_threads(), n))
    scratch = torch.empty(threads * (height * width + width), dtype=torch.float64)
    lib.mosaic_library_chunk(
        chunk.data_ptr(), n, channels, height, width, patch_size, int(circular), windows.data_ptr(), hl, wl,
        norms.data_ptr(), centres.data_ptr(), threads, scratch.data_ptr(),
    )
    return windows, norms, centres
