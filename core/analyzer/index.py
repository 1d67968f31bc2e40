"""The patch index of one library in one feature space: build, load, update incrementally.

:class:`IndexManager.open` returns an up-to-date :class:`PatchIndex` and the notices to show:

* no index yet -> built (with progress);
* images added to the library -> only the new images are described and appended;
* images removed -> rebuilt (FAISS lists and row numbers would otherwise go stale);
* manifest or arrays damaged, wrong version or settings -> rebuilt, with a notice, never a crash.

Loaded indexes are cached in memory per folder until the manifest changes.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import config
from core.analyzer import store
from core.analyzer.descriptors import PatchDescriber, library_stride
from core.analyzer.globalindex import GlobalIndex, grown_global_index, load_global_index, make_global_index
from core.analyzer.nearcopy import BOXES, library_descriptors
from core.analyzer.pyramid import level_side, resized
from core.analyzer.search import ExactSearch, FaissSearch, Searcher, make_searcher
from core.analyzer.settings import INDEX_VERSION, AnalyzerSettings, ProgressFn
from core.errors import BadInputError
from core.libraries import LibraryManager
from core.libraries.progress import RateMeter
from core.words import plural

logger = logging.getLogger(__name__)

_BATCH = 32
#: Share of the progress bar for reading the library's pictures (the rest, up to 0.9, for describing them).
READ_SHARE = 0.25
_CACHE: dict[str, tuple[tuple, PatchIndex]] = {}
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def _lock(directory: Path) -> threading.Lock:
    with _GUARD:
        return _LOCKS.setdefault(str(directory), threading.Lock())


@dataclass
class ScaleIndex:
    """Library patches of one size: a searcher and, per row, ``(index row, y, x)`` of the patch."""

    patch: int
    searcher: Searcher
    rows: np.ndarray  # (M, 3) int32


@dataclass
class PatchIndex:
    """Everything the analyzer needs about a library, in index order (``item_ids``)."""

    library: str
    space: str
    key: str
    directory: Path
    item_ids: list[str]
    channels: int
    factor: int
    work_size: int
    pixels: np.ndarray  # (N, C, S, S) uint8
    features: np.ndarray | None  # (N, Cf, S/f, S/f) float16 (latent space) or None (pixels)
    global_index: GlobalIndex  # whole-image descriptors (N, len(BOXES), D) and retrieval over them
    scales: dict[int, ScaleIndex] = field(default_factory=dict)
    #: the library reduced to ``level_side(work_size, k)``: patch size -> patches, per level ``k`` < 1
    levels: dict[float, dict[int, ScaleIndex]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.item_ids)

    def feature_images(self, rows: list[int]) -> torch.Tensor:
        """Feature maps of some index rows, float32."""
        if self.features is None:
            return torch.from_numpy(self.pixels[rows]).float() / 127.5 - 1.0
        return torch.from_numpy(self.features[rows].astype(np.float32))

    def all_scales(self) -> list[tuple[str, ScaleIndex]]:
        """Every searcher with its file stem: ``scale-16``, ``level-0.5-scale-16``, ..."""
        out = [(f"scale-{p}", scale) for p, scale in self.scales.items()]
        for k, scales in self.levels.items():
            out.extend((f"level-{k:g}-scale-{p}", scale) for p, scale in scales.items())
        return out

    def backend(self) -> str:
        kinds = {scale.searcher.kind for scale in self.scales.values()}
        return "+".join(sorted(kinds)) or "none"


@dataclass
class _Described:
    pixels: np.ndarray
    features: np.ndarray | None
    global_descriptors: np.ndarray
    vectors: dict[int, np.ndarray]
    rows: dict[int, np.ndarray]
    level_vectors: dict[float, dict[int, np.ndarray]]
    level_rows: dict[float, dict[int, np.ndarray]]


class IndexManager:
    """Opens (building or updating as needed) the patch index of a library in a feature space."""

    def __init__(
        self,
        settings: AnalyzerSettings,
        space: Any,
        libraries: LibraryManager,
        root: Path | None = None,
        force_backend: str | None = None,
    ) -> None:
        self.settings = settings
        self.space = space
        self.libraries = libraries
        self.root = Path(root) if root is not None else None
        self.force_backend = force_backend
        if settings.work_size % space.factor:
            raise BadInputError(
                f"The working size {settings.work_size} px must be a multiple of the VAE's "
                f"downsampling factor {space.factor}."
            )
        self.scales = settings.indexed_scales(space.factor)
        self.levels = settings.library_levels(space.factor)
        #: patch sizes per key: 1.0 (the library as it is) and each reduced level
        self.patches: dict[float, tuple[int, ...]] = {1.0: self.scales}
        for k in self.levels:
            self.patches[k] = settings.level_patches(space.factor, level_side(settings.work_size, k))
        self.key = settings.index_key(space.name, space.key_extra() + (force_backend or ""))

    def directory(self, library: str) -> Path:
        """Where the index of ``library`` lives; a workspace's own libraries get a folder of their own."""
        return library_indexes(self.libraries, library, self.root) / self.key

    # -- public ---------------------------------------------------------------------------------

    def open(self, library: str, on_progress: ProgressFn | None = None) -> tuple[PatchIndex, list[str]]:
        """The index of ``library``, up to date with its current items, and notices for the person."""
        items = self.libraries.items(library)  # unknown library -> BadInputError naming the others
        if not items:
            raise BadInputError(f"The library '{library}' has no images yet; add images before analysing.")
        current = [item["id"] for item in items]
        directory = self.directory(library)
        notices: list[str] = []
        with _lock(directory):
            index: PatchIndex | None = None
            try:
                index = self._load(directory)
            except store.IndexMissing:
                logger.info("no %s index for %s yet; building it", self.space.name, library)
            except store.IndexDamaged as exc:
                logger.warning("index %s is damaged (%s); rebuilding", directory, exc)
                notices.append(
                    "The library's saved search data could not be used, so it was prepared again."
                )
            if index is not None:
                held = set(index.item_ids)
                removed = held - set(current)
                added = [item_id for item_id in current if item_id not in held]
                if removed:
                    notices.append(
                        f"{plural(len(removed), 'picture')} left the library since it was last prepared, "
                        "so it was prepared again."
                    )
                    index = None
                elif added:
                    index = self._append(index, library, added, on_progress)
                    notices.append(f"Prepared {plural(len(added), 'new picture')} of the library for the check.")
            if index is None:
                index = self._build(library, directory, on_progress)
        return index, notices

    # -- building -------------------------------------------------------------------------------

    def _library_pixels(
        self, library: str, wanted: list[str] | None, on_progress: ProgressFn | None = None
    ) -> tuple[np.ndarray, list[str], int]:
        """The library's pictures at the working size as uint8 ``(N, C, S, S)`` (a memory map of the
        library's picture cache: no limit on the number of pictures), their ids and channels; ``wanted``:
        only these items (read into memory)."""
        info = self.libraries.ensure(library)
        progress = None
        if on_progress is not None:
            meter = RateMeter("picture")

            def progress(done: int, expected: int) -> None:
                text = meter.update(done, expected)
                on_progress(READ_SHARE * done / max(expected, 1), f"Reading the library's pictures: {text}")

        lib = self.libraries.pixels(library, self.settings.work_size, info.channels, progress=progress)
        if wanted is None:
            return lib.pixels, list(lib.item_ids), info.channels
        position = {item_id: i for i, item_id in enumerate(lib.item_ids)}
        rows = [position[item_id] for item_id in wanted]
        return lib.pixels[rows], list(wanted), info.channels

    def _describe(self, pixels: np.ndarray, first_row: int, on_progress: ProgressFn | None) -> _Described:
        """Descriptors of ``pixels`` (uint8, rows ``first_row``… of the index), a batch at a time: the
        pictures are never all held as floats."""
        s = self.settings
        sizes = sorted({p for patches in self.patches.values() for p in patches})
        describers = {p: PatchDescriber(p, s.grid, s.colour_weight, s.flat_std) for p in sizes}
        keys: list[float] = [1.0, *self.levels]
        vectors: dict[float, dict[int, list[np.ndarray]]] = {k: {p: [] for p in self.patches[k]} for k in keys}
        rows: dict[float, dict[int, list[np.ndarray]]] = {k: {p: [] for p in self.patches[k]} for k in keys}
        features: list[np.ndarray] = []
        global_descriptors: list[np.ndarray] = []
        dims: dict[int, int] = {}
        total = pixels.shape[0]
        started = time.perf_counter()
        meter = RateMeter("picture")
        for start in range(0, total, _BATCH):
            batch = torch.from_numpy(np.array(pixels[start : start + _BATCH], dtype=np.float32)) / 127.5 - 1.0
            global_descriptors.append(library_descriptors(batch).astype(np.float16))
            fmap = self.space.encode(batch)
            if self.space.factor != 1:
                features.append(fmap.numpy().astype(np.float16))
            for k in keys:
                # reduced levels exist in pixel space only, where the features are the pixels
                level = fmap if k == 1.0 else resized(fmap, *(2 * (level_side(fmap.shape[-1], k),)))
                structure = self.space.structure(level)
                for p in self.patches[k]:
                    described = describers[p](level, structure, library_stride(p))
                    dims[p] = int(described.vectors.shape[-1])
                    keep = described.textured.numpy()
                    for b in range(batch.shape[0]):
                        mask = keep[b]
                        vectors[k][p].append(described.vectors[b].numpy()[mask])
                        pos = described.positions[mask]
                        item = np.full((pos.shape[0], 1), first_row + start + b, dtype=np.int32)
                        rows[k][p].append(np.concatenate([item, pos], axis=1).astype(np.int32))
            if on_progress is not None:
                done = min(total, start + _BATCH)
                fraction = READ_SHARE + (0.9 - READ_SHARE) * done / total
                on_progress(fraction, f"Preparing the library: {meter.update(done, total)}")
        logger.info("described %d images in %.1f s", total, time.perf_counter() - started)

        def stacked(k: float) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
            return (
                {p: _stack(vectors[k][p], width=dims.get(p)) for p in self.patches[k]},
                {p: _stack(rows[k][p], width=3, dtype=np.int32) for p in self.patches[k]},
            )

        base_vectors, base_rows = stacked(1.0)
        levels = {k: stacked(k) for k in self.levels}
        return _Described(
            pixels=pixels,
            features=np.concatenate(features) if features else None,
            global_descriptors=np.concatenate(global_descriptors),
            vectors=base_vectors,
            rows=base_rows,
            level_vectors={k: v for k, (v, _) in levels.items()},
            level_rows={k: r for k, (_, r) in levels.items()},
        )

    def _build(self, library: str, directory: Path, on_progress: ProgressFn | None) -> PatchIndex:
        if on_progress is not None:
            on_progress(0.0, "Preparing the library for the check…")
        pixels, item_ids, channels = self._library_pixels(library, None, on_progress)
        described = self._describe(pixels, 0, on_progress)
        scales = self._scale_indexes(described.vectors, described.rows)
        levels = {k: self._scale_indexes(described.level_vectors[k], described.level_rows[k]) for k in self.levels}
        index = PatchIndex(
            library=library,
            space=self.space.name,
            key=self.key,
            directory=directory,
            item_ids=item_ids,
            channels=channels,
            factor=self.space.factor,
            work_size=self.settings.work_size,
            pixels=described.pixels,
            features=described.features,
            global_index=make_global_index(
                described.global_descriptors, self.settings.exact_max_vectors, self.force_backend
            ),
            scales=scales,
            levels=levels,
        )
        if on_progress is not None:
            on_progress(0.95, "Saving the prepared library")
        self._save(index, keep=())
        _drop_older_versions(directory)
        if on_progress is not None:
            on_progress(1.0, "Library ready")
        return index

    def _scale_indexes(self, vectors: dict[int, np.ndarray], rows: dict[int, np.ndarray]) -> dict[int, ScaleIndex]:
        return {
            p: ScaleIndex(
                p,
                make_searcher(vectors[p], self.settings.exact_max_vectors, self.settings.nprobe, self.force_backend),
                rows[p],
            )
            for p in vectors
        }

    def _append(
        self, index: PatchIndex, library: str, added: list[str], on_progress: ProgressFn | None
    ) -> PatchIndex:
        pixels, item_ids, _ = self._library_pixels(library, added, on_progress)
        described = self._describe(pixels, index.count, on_progress)
        index.item_ids = index.item_ids + item_ids
        index.pixels = np.concatenate([index.pixels, described.pixels])
        if index.features is not None and described.features is not None:
            index.features = np.concatenate([index.features, described.features])
        index.global_index = grown_global_index(
            index.global_index, described.global_descriptors, self.settings.exact_max_vectors, self.force_backend
        )
        self._extend(index.scales, described.vectors, described.rows)
        for k, scales in index.levels.items():
            self._extend(scales, described.level_vectors[k], described.level_rows[k])
        self._save(index, keep=())
        return index

    def _extend(
        self, scales: dict[int, ScaleIndex], vectors: dict[int, np.ndarray], rows: dict[int, np.ndarray]
    ) -> None:
        for p, scale in scales.items():
            new = vectors[p]
            searcher = scale.searcher
            if isinstance(searcher, ExactSearch) and self.force_backend != "exact" and (
                searcher.count + new.shape[0] > self.settings.exact_max_vectors
            ):
                searcher = make_searcher(
                    np.concatenate([searcher.vectors, new]), self.settings.exact_max_vectors, self.settings.nprobe
                )
            elif new.shape[0]:
                searcher = searcher.add(new)
            scale.searcher = searcher
            scale.rows = np.concatenate([scale.rows, rows[p]])

    # -- persistence ----------------------------------------------------------------------------

    def _manifest(self, index: PatchIndex) -> dict[str, Any]:
        return {
            "version": INDEX_VERSION,
            "library": index.library,
            "space": index.space,
            "key": index.key,
            "settings": self.settings.to_json(),
            "channels": index.channels,
            "factor": index.factor,
            "work_size": index.work_size,
            "item_ids": index.item_ids,
            "scales": {
                str(p): {"kind": scale.searcher.kind, "count": scale.searcher.count}
                for p, scale in index.scales.items()
            },
            "levels": {
                f"{k:g}": {str(p): {"kind": sc.searcher.kind, "count": sc.searcher.count} for p, sc in scales.items()}
                for k, scales in index.levels.items()
            },
            "global_boxes": len(BOXES),
            "global": index.global_index.meta(),
            "files": {},
        }

    def _save(self, index: PatchIndex, keep: tuple[str, ...]) -> None:
        writers = {
            "pixels.npy": lambda path: store.save_array(path, index.pixels),
            "global.npy": lambda path: store.save_array(path, np.asarray(index.global_index.descriptors, np.float16)),
        }
        if index.global_index.FILE is not None:
            writers[index.global_index.FILE] = index.global_index.write
        if index.features is not None:
            writers["features.npy"] = lambda path: store.save_array(path, index.features)
        for stem, scale in index.all_scales():
            suffix = "faiss" if scale.searcher.kind == "faiss" else "npy"
            writers[f"{stem}.{suffix}"] = scale.searcher.save
            writers[f"{stem}-rows.npy"] = lambda path, rows=scale.rows: store.save_array(path, rows)
        try:
            store.write_index(index.directory, self._manifest(index), writers, keep)
        except OSError as exc:  # a full or read-only disk must not stop the analysis itself
            logger.warning("could not save index %s: %s", index.directory, exc)
            return
        _CACHE[str(index.directory)] = (_signature(index.directory), index)

    def _load(self, directory: Path) -> PatchIndex:
        cached = _CACHE.get(str(directory))
        if cached is not None and cached[0] == _signature(directory):
            return cached[1]
        manifest = store.read_manifest(directory)
        if manifest.get("version") != INDEX_VERSION or manifest.get("key") != self.key:
            raise store.IndexDamaged("it was made by another version of the studio")
        try:
            item_ids = [str(v) for v in manifest["item_ids"]]
            channels = int(manifest["channels"])
            scales_meta = {int(p): meta for p, meta in manifest["scales"].items()}
            levels_meta = dict(manifest.get("levels") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise store.IndexDamaged("its manifest is incomplete") from exc
        if sorted(scales_meta) != sorted(self.scales):
            raise store.IndexDamaged("it was made with other patch sizes")
        if store.verify_files(directory, manifest):  # by size and time; hashed only where those changed
            store.note_files(directory, manifest)
        count = len(item_ids)
        # memory-mapped: a query reads the rows it compares, not the whole library
        pixels = store.load_array(directory / "pixels.npy", mmap=True)
        globals_ = store.load_array(directory / "global.npy", mmap=True)
        features = store.load_array(directory / "features.npy", mmap=True) if self.space.factor != 1 else None
        size = self.settings.work_size
        if pixels.dtype != np.uint8 or pixels.shape != (count, channels, size, size):
            raise store.IndexDamaged("its images have an unexpected shape")
        if globals_.dtype != np.float16 or globals_.ndim != 3 or globals_.shape[:2] != (count, len(BOXES)):
            raise store.IndexDamaged("its whole-image descriptors have an unexpected shape")
        try:
            global_index = load_global_index(directory, dict(manifest.get("global") or {}), globals_)
        except ValueError as exc:
            raise store.IndexDamaged(str(exc)) from exc
        if features is not None and features.shape[0] != count:
            raise store.IndexDamaged("its latents have an unexpected shape")
        scales = {p: self._load_scale(directory, f"scale-{p}", p, meta, count) for p, meta in scales_meta.items()}
        levels: dict[float, dict[int, ScaleIndex]] = {}
        for k in self.levels:
            level_meta = levels_meta.get(f"{k:g}")
            if not isinstance(level_meta, dict) or sorted(int(p) for p in level_meta) != sorted(self.patches[k]):
                raise store.IndexDamaged("it was made without the reduced sizes of the library")
            levels[k] = {
                int(p): self._load_scale(directory, f"level-{k:g}-scale-{p}", int(p), meta, count)
                for p, meta in level_meta.items()
            }
        index = PatchIndex(
            library=str(manifest.get("library")),
            space=self.space.name,
            key=self.key,
            directory=directory,
            item_ids=item_ids,
            channels=channels,
            factor=self.space.factor,
            work_size=size,
            pixels=pixels,
            features=features,
            global_index=global_index,
            scales=scales,
            levels=levels,
        )
        _CACHE[str(directory)] = (_signature(directory), index)
        return index

    def _load_scale(self, directory: Path, stem: str, patch: int, meta: dict, count: int) -> ScaleIndex:
        rows = store.load_array(directory / f"{stem}-rows.npy")
        try:
            if meta.get("kind") == "faiss":
                searcher: Searcher = FaissSearch.load(directory / f"{stem}.faiss", self.settings.nprobe)
            else:
                searcher = ExactSearch(store.load_array(directory / f"{stem}.npy"))
        except (RuntimeError, ValueError) as exc:
            raise store.IndexDamaged(f"its {stem} search index could not be read") from exc
        if rows.ndim != 2 or rows.shape[1] != 3 or rows.shape[0] != searcher.count:
            raise store.IndexDamaged(f"its {stem} patch list does not match its search index")
        if rows.shape[0] and (rows[:, 0].min() < 0 or rows[:, 0].max() >= count):
            raise store.IndexDamaged(f"its {stem} patch list names unknown images")
        return ScaleIndex(patch, searcher, rows)


def _stack(parts: list[np.ndarray], width: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    parts = [p for p in parts if p.shape[0]]
    if not parts:
        return np.zeros((0, width or 1), dtype=dtype)
    return np.concatenate(parts).astype(dtype)


def _signature(directory: Path) -> tuple:
    """Names, sizes and modification times of an index's files (cheap change detection)."""
    try:
        return tuple(
            sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns) for entry in directory.iterdir())
        )
    except OSError:
        return ()


def _drop_older_versions(directory: Path) -> None:
    """Remove the library's indexes made by older versions of the studio (this version never reads them:
    the version is part of every index's key) once ``directory`` is built; indexes for other settings
    stay."""
    try:
        siblings = [p for p in directory.parent.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return
    for sibling in siblings:
        if sibling == directory:
            continue
        try:
            version = int(store.read_manifest(sibling).get("version", 0))
        except (store.IndexDamaged, store.IndexMissing, OSError, TypeError, ValueError):
            continue
        if version < INDEX_VERSION:
            logger.info("removing %s, an index made by an older version of the studio", sibling)
            shutil.rmtree(sibling, ignore_errors=True)
            _CACHE.pop(str(sibling), None)


def clear_cache() -> None:
    """Forget indexes loaded in this process (tests; after deleting index folders)."""
    _CACHE.clear()


def library_indexes(libraries: LibraryManager, library: str, root: Path | None = None) -> Path:
    """The folder of every index of ``library`` (one per settings key); a workspace's own libraries get a
    folder of their own."""
    base = Path(root) if root is not None else store.indexes_root()
    owner = libraries.owner(library)
    if owner is not None and owner != config.DEFAULT_WORKSPACE:
        base = base / "_workspaces" / owner
    return base / library


@dataclass
class IndexCheck:
    """What :func:`verify_indexes` found in one prepared index: ``problem`` None when every file matches."""

    key: str
    files: int
    problem: str | None = None


def verify_indexes(libraries: LibraryManager, library: str, root: Path | None = None) -> list[IndexCheck]:
    """Read every file of every prepared index (search data) of ``library`` and compare it with the
    checksum noted when it was written (loading only compares sizes and times). A damaged index is
    removed: it is prepared again the next time the library is used."""
    libraries.get(library)  # an unknown library: BadInputError naming the others
    checks: list[IndexCheck] = []
    folder = library_indexes(libraries, library, root)
    if not folder.is_dir():
        return checks
    for directory in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        with _lock(directory):
            try:
                manifest = store.read_manifest(directory)
                store.verify_files(directory, manifest, full=True)
                checks.append(IndexCheck(directory.name, len(manifest["files"])))
            except (store.IndexDamaged, store.IndexMissing) as exc:
                logger.warning("index %s is damaged (%s); removing it", directory, exc)
                shutil.rmtree(directory, ignore_errors=True)
                _CACHE.pop(str(directory), None)
                checks.append(IndexCheck(directory.name, 0, str(exc)))
    return checks
