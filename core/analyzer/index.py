"""The patch index of one library in one feature space: build, load, update incrementally.

:class:`IndexManager.open` returns an up-to-date :class:`PatchIndex` and the notices to show:

* no index yet -> built (with progress); a build that was stopped (killed, say) goes on from the
  shards it had finished;
* images added to the library -> only the new images are described, into new shards (with the
  pictures of a small last shard, so that shards do not stay tiny);
* images removed -> made again (row numbers would otherwise go stale), reusing the shards before the
  first removed picture;
* manifest or arrays damaged, wrong version or settings -> made again, with a notice, never a crash.

On disk (``<indexes>/<library>/<key>/``)::

    manifest.json                 item ids, shards, searchers, and every file's size, time and checksum
    shards/00000/                 one shard of up to SHARD_IMAGES pictures, written once:
        shard.json                its first row, item ids and files (checksums taken as they were written)
        pixels.npy, global.npy    the pictures (uint8) and their whole-image descriptors (float16)
        features.npy              latents (latent space only)
        <stem>.vec.npy            the patch descriptors of one searcher (float16)
        <stem>.rows.npy           (index row, y, x) of each of those patches
    trained/<stem>.faiss          an empty IVF index trained on a sample of the stem's descriptors
    lists/<stem>/00000.faiss      that index filled with one shard's descriptors (ids: rows of the stem)
    trained/global.faiss, lists/global/00000.faiss    the same for the whole-image index (large libraries)

Everything is read through memory maps: a query reads the rows and lists it uses. The descriptors of
one shard are held at a time while building, so a build's memory does not grow with the library.

Loaded indexes are cached in memory per folder until the manifest changes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import config
from core.analyzer import store
from core.analyzer.descriptors import PatchDescriber, library_stride
from core.analyzer.globalindex import CompressedGlobal, ExactGlobal, GlobalIndex
from core.analyzer.nearcopy import BOXES, library_descriptors
from core.analyzer.pyramid import level_side, resized
from core.analyzer.search import (
    ExactSearch,
    Recipe,
    Searcher,
    ShardedFaissSearch,
    choose_recipe,
    for_faiss,
    merge_lists,
    training_rows,
)
from core.analyzer.settings import INDEX_VERSION, AnalyzerSettings, ProgressFn
from core.analyzer.sharded import ShardedArray
from core.errors import BadInputError
from core.libraries import LibraryManager
from core.libraries.locks import LibraryLock, library_lock
from core.libraries.progress import RateMeter
from core.runners import LocalRunner, shard_runner
from core.words import plural

logger = logging.getLogger(__name__)

_BATCH = 32
#: pictures per shard: what a build holds in memory at once, and the unit a stopped build resumes by
SHARD_IMAGES = 2048
#: a last shard with fewer pictures than this is made again together with pictures added to the library
TAIL_REWRITE = 256
SHARDS = "shards"
SHARD_MANIFEST = "shard.json"
TRAINED = "trained"
LISTS = "lists"
#: a searcher's lists are merged into one file (searched 2x faster than 49 stacked shard files) once it has
#: more shards than this; shards added later are stacked on the merge until more than this many (or an eighth
#: of all) are left out of it, then every shard is merged again
MERGE_AFTER = 4
#: the whole-image index stays exact below this many descriptors (PQ needs a few hundred to train)
_MIN_GLOBAL_FAISS = 4 * 256
_GLOBAL_NPROBE = 16
#: held-out descriptors a searcher's list encoding is measured on
_RECALL_QUERIES = 500
#: a searcher with fewer vectors than this stays exact whatever it is asked (IVF needs some to train)
_MIN_FAISS_VECTORS = 64
#: Share of the progress bar for reading the library's pictures (the rest, up to 0.9, for describing them).
READ_SHARE = 0.25
_CACHE: dict[str, tuple[tuple, PatchIndex]] = {}


def _lock(directory: Path) -> LibraryLock:
    """The lock of one index folder, across threads and processes (a build writes into the folder); its
    file lies beside the libraries' index folders (``<indexes>/.locks/<library>.<key>.lock``)."""
    return library_lock(directory.parent.parent, f"{directory.parent.name}.{directory.name}")


@dataclass
class ScaleIndex:
    """Library patches of one size: a searcher and, per row, ``(index row, y, x)`` of the patch."""

    patch: int
    searcher: Searcher
    rows: np.ndarray | ShardedArray  # (M, 3) int32


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
    pixels: np.ndarray | ShardedArray  # (N, C, S, S) uint8
    features: np.ndarray | ShardedArray | None  # (N, Cf, S/f, S/f) float16 (latent space) or None (pixels)
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
class _Plan:
    """A shard to write: its number, its first index row, and its pictures (rows of the library's pixels)."""

    number: int
    first_row: int
    item_ids: list[str]
    rows: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.number:05d}"


@dataclass
class _Shard:
    """A shard on disk, as the manifest lists it."""

    name: str
    first_row: int
    count: int
    vectors: dict[str, int]  # per stem
    files: dict[str, dict[str, Any]]  # file name in the shard -> size, time, checksum

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "first_row": self.first_row, "count": self.count, "vectors": self.vectors}


@dataclass
class _DescribeTask:
    """One shard to describe: its staging folder (holding ``pixels.npy``) and its first index row."""

    staging: str
    first_row: int


@dataclass
class ShardDescriber:
    """Describes one shard's pictures, a batch at a time, into its staging folder: whole-image
    descriptors, latents (latent space), and each searcher's patch descriptors and positions. Picklable:
    it runs in this process or as a Ray task, and reads and writes only its own folder."""

    settings: AnalyzerSettings
    space: Any
    patches: dict[float, tuple[int, ...]]
    levels: tuple[float, ...] | list[float]
    stems: dict[str, tuple[float, int]]

    def __call__(
        self, task: _DescribeTask, progress: Any = None
    ) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        """Returns the number of patches per searcher and the written files (size, time, checksum);
        ``progress(pictures done)`` after each batch."""
        staging = Path(task.staging)
        s = self.settings
        sizes = sorted({p for patches in self.patches.values() for p in patches})
        describers = {p: PatchDescriber(p, s.grid, s.colour_weight, s.flat_std) for p in sizes}
        vectors: dict[str, list[np.ndarray]] = {stem: [] for stem in self.stems}
        rows: dict[str, list[np.ndarray]] = {stem: [] for stem in self.stems}
        dims: dict[int, int] = {}
        features: list[np.ndarray] = []
        global_descriptors: list[np.ndarray] = []
        pixels = store.load_array(staging / "pixels.npy", mmap=True)
        count = pixels.shape[0]
        for start in range(0, count, _BATCH):
            batch = torch.from_numpy(pixels[start : start + _BATCH].astype(np.float32)) / 127.5 - 1.0
            global_descriptors.append(library_descriptors(batch).astype(np.float16))
            fmap = self.space.encode(batch)
            if self.space.factor != 1:
                features.append(fmap.numpy().astype(np.float16))
            for k in [1.0, *self.levels]:
                # reduced levels exist in pixel space only, where the features are the pixels
                level = fmap if k == 1.0 else resized(fmap, *(2 * (level_side(fmap.shape[-1], k),)))
                structure = self.space.structure(level)
                for p in self.patches[k]:
                    stem = f"scale-{p}" if k == 1.0 else f"level-{k:g}-scale-{p}"
                    described = describers[p](level, structure, library_stride(p))
                    dims[p] = int(described.vectors.shape[-1])
                    keep = described.textured.numpy()
                    for b in range(batch.shape[0]):
                        mask = keep[b]
                        vectors[stem].append(described.vectors[b].numpy()[mask].astype(np.float16))
                        pos = described.positions[mask]
                        item = np.full((pos.shape[0], 1), task.first_row + start + b, dtype=np.int32)
                        rows[stem].append(np.concatenate([item, pos], axis=1).astype(np.int32))
            if progress is not None and start + _BATCH < count:
                progress(start + _BATCH)
        arrays: dict[str, np.ndarray] = {"global.npy": np.concatenate(global_descriptors)}
        if features:
            arrays["features.npy"] = np.concatenate(features)
        for stem, (_, p) in self.stems.items():
            arrays[f"{stem}.vec.npy"] = _stack(vectors[stem], (0, dims[p]), np.float16)
            arrays[f"{stem}.rows.npy"] = _stack(rows[stem], (0, 3), np.int32)
        files = {"pixels.npy": store.file_meta(staging / "pixels.npy")}
        for name, array in arrays.items():
            store.save_array(staging / name, array)
            files[name] = store.file_meta(staging / name)
        return {stem: int(arrays[f"{stem}.vec.npy"].shape[0]) for stem in self.stems}, files


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
        #: every searcher's file stem -> (level, patch size); level 1.0 is the library as it is
        self.stems: dict[str, tuple[float, int]] = {f"scale-{p}": (1.0, p) for p in self.scales}
        for k in self.levels:
            self.stems.update({f"level-{k:g}-scale-{p}": (k, p) for p in self.patches[k]})
        self.key = settings.index_key(space.name, space.key_extra() + (force_backend or ""))

    def directory(self, library: str) -> Path:
        """Where the index of ``library`` lives; a workspace's own libraries get a folder of their own."""
        return library_indexes(self.libraries, library, self.root) / self.key

    # -- public ---------------------------------------------------------------------------------

    def open(self, library: str, on_progress: ProgressFn | None = None) -> tuple[PatchIndex, list[str]]:
        """The index of ``library``, up to date with its current items, and notices for the person."""
        current = self.libraries.item_ids(library)  # unknown library -> BadInputError naming the others
        if not current:
            raise BadInputError(f"The library '{library}' has no images yet; add images before analysing.")
        directory = self.directory(library)
        notices: list[str] = []
        with _lock(directory):
            index: PatchIndex | None = None
            try:
                index = self._load(directory)
            except store.IndexMissing as exc:
                logger.info("no finished %s index for %s yet (%s); building it", self.space.name, library, exc)
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
                    try:
                        index = self._append(index, library, added, on_progress)
                    except OSError as exc:
                        raise BadInputError(_cannot_write("The new pictures of the library", exc)) from exc
                    notices.append(f"Prepared {plural(len(added), 'new picture')} of the library for the check.")
            if index is None:
                try:
                    index = self._build(library, directory, on_progress)
                except OSError as exc:
                    raise BadInputError(_cannot_write("The library", exc)) from exc
        return index, notices

    def preload(self, library: str) -> bool:
        """Load the finished index of ``library`` into this process's cache, building and updating
        nothing (a worker does this when it starts, so that its first check does not wait for the
        loading). False when there is no usable index to load; the next :meth:`open` deals with it."""
        directory = self.directory(library)
        if not (directory / store.MANIFEST).is_file():
            return False
        self.libraries.item_ids(library)  # the list of its pictures, which every check compares with the index's
        with _lock(directory):
            try:
                loaded = self._load(directory)
                for _, scale in loaded.all_scales():
                    if hasattr(scale.searcher, "prepare"):
                        scale.searcher.prepare()
            except (store.IndexMissing, store.IndexDamaged) as exc:
                logger.info("not loading the %s index of %s ahead of time: %s", self.space.name, library, exc)
                return False
        return True

    # -- building -------------------------------------------------------------------------------

    def _library_pixels(self, library: str, on_progress: ProgressFn | None = None) -> tuple[np.ndarray, list[str]]:
        """The library's pictures at the working size as uint8 ``(N, C, S, S)`` (a memory map of the
        library's picture cache: no limit on the number of pictures) and their ids."""
        info = self.libraries.ensure(library)
        progress = None
        if on_progress is not None:
            meter = RateMeter("picture")

            def progress(done: int, expected: int) -> None:
                text = meter.update(done, expected)
                on_progress(READ_SHARE * done / max(expected, 1), f"Reading the library's pictures: {text}")

        lib = self.libraries.pixels(library, self.settings.work_size, info.channels, progress=progress)
        return lib.pixels, list(lib.item_ids)

    @staticmethod
    def _plans(item_ids: list[str], rows: np.ndarray, first_row: int, first_number: int) -> list[_Plan]:
        return [
            _Plan(first_number + i, first_row + start, item_ids[start : start + SHARD_IMAGES],
                  rows[start : start + SHARD_IMAGES])
            for i, start in enumerate(range(0, len(item_ids), SHARD_IMAGES))
        ]

    def _build(self, library: str, directory: Path, on_progress: ProgressFn | None) -> PatchIndex:
        if on_progress is not None:
            on_progress(0.0, "Preparing the library for the check…")
        _clear_for_build(directory)
        pixels, item_ids = self._library_pixels(library, on_progress)
        plans = self._plans(item_ids, np.arange(len(item_ids)), 0, 0)
        shards = self._write_shards(directory, plans, pixels, on_progress)
        _drop_other_shards(directory, {shard.name for shard in shards})
        if on_progress is not None:
            on_progress(0.9, "Making the library searchable")
        stems, files = self._fill_stems(directory, shards, {}, {}, first_new=0)
        global_meta = self._fill_global(directory, shards, {}, {}, 0, files)
        self._seal(directory, library, item_ids, shards, stems, files, global_meta)
        _drop_older_versions(directory)
        index = self._load(directory)
        if on_progress is not None:
            on_progress(1.0, "Library ready")
        return index

    def _append(
        self, index: PatchIndex, library: str, added: list[str], on_progress: ProgressFn | None
    ) -> PatchIndex:
        directory = index.directory
        manifest = store.read_manifest(directory)
        old = [
            _Shard(str(s["name"]), int(s["first_row"]), int(s["count"]), dict(s["vectors"]), {})
            for s in manifest["shards"]
        ]
        for shard in old:
            prefix = f"{SHARDS}/{shard.name}/"
            shard.files = {n[len(prefix):]: m for n, m in manifest["files"].items() if n.startswith(prefix)}
        pixels, item_ids = self._library_pixels(library, on_progress)
        position = {item_id: i for i, item_id in enumerate(item_ids)}
        last = max(int(shard.name) for shard in old)
        first_row, described = index.count, list(added)
        if old[-1].count < TAIL_REWRITE:
            # a small last shard is made again with the new pictures (under a new name: the index keeps
            # using the old one until the new manifest is written), so that shards do not stay tiny
            tail = old.pop()
            first_row, described = tail.first_row, index.item_ids[tail.first_row :] + described
        rows = np.array([position[item_id] for item_id in described], dtype=np.int64)
        plans = self._plans(described, rows, first_row, last + 1)
        new = self._write_shards(directory, plans, pixels, on_progress)
        shards = old + new
        stems, files = self._fill_stems(
            directory, shards, dict(manifest.get("stems") or {}), dict(manifest["files"]), first_new=len(old)
        )
        global_meta = self._fill_global(
            directory, shards, dict(manifest.get("global") or {}), dict(manifest["files"]), len(old), files
        )
        self._seal(directory, library, index.item_ids + added, shards, stems, files, global_meta)
        _drop_other_shards(directory, {shard.name for shard in shards})
        return self._load(directory)

    def _write_shards(
        self, directory: Path, plans: list[_Plan], pixels: np.ndarray, on_progress: ProgressFn | None
    ) -> list[_Shard]:
        """Describe each planned shard into its own folder (reusing a sealed one that matches: a stopped
        build goes on where it stopped). Shards are described by the runner (this process, or Ray tasks)
        and sealed here, in order: a shard's folder appears only once all its files are written."""
        folder = directory / SHARDS
        folder.mkdir(parents=True, exist_ok=True)
        total = sum(len(plan.item_ids) for plan in plans)
        meter = RateMeter("picture")
        started = time.perf_counter()
        sealed: dict[str, _Shard] = {}
        todo: list[tuple[_Plan, Path]] = []
        for plan in plans:
            shard = self._sealed(folder / plan.name, plan)
            if shard is not None:
                logger.info("shard %s of %s is already prepared; kept", plan.name, directory)
                sealed[plan.name] = shard
            else:
                todo.append((plan, folder / f".tmp-{plan.name}-{uuid.uuid4().hex[:8]}"))
        done = total - sum(len(plan.item_ids) for plan, _ in todo)
        runner = shard_runner()
        describer = ShardDescriber(self.settings, self.space, self.patches, self.levels, self.stems)

        def tasks() -> Any:
            for plan, staging in todo:  # the pictures go first, read by the describing task
                shutil.rmtree(folder / plan.name, ignore_errors=True)
                staging.mkdir()
                store.save_array(staging / "pixels.npy", np.asarray(pixels[plan.rows], dtype=np.uint8))
                store.release_pages(pixels)  # the picture cache is read once: its pages need not stay resident
                yield _DescribeTask(str(staging), plan.first_row)

        def report(now: int) -> None:
            if on_progress is not None:
                fraction = READ_SHARE + (0.9 - READ_SHARE) * now / max(total, 1)
                on_progress(fraction, f"Preparing the library: {meter.update(now, total)}")

        if isinstance(runner, LocalRunner):
            work = lambda task: describer(task, lambda n: report(done + n))  # noqa: E731 - progress in a shard
        else:
            work = describer
        try:
            for (plan, staging), (vectors, files) in zip(todo, runner.map(work, tasks()), strict=True):
                meta = {
                    "version": INDEX_VERSION,
                    "key": self.key,
                    "first_row": plan.first_row,
                    "item_ids": plan.item_ids,
                    "vectors": vectors,
                    "files": files,
                }
                (staging / SHARD_MANIFEST).write_text(json.dumps(meta), encoding="utf-8")
                os.rename(staging, folder / plan.name)
                sealed[plan.name] = _Shard(plan.name, plan.first_row, len(plan.item_ids), vectors, files)
                done += len(plan.item_ids)
                report(done)
        finally:
            for _, staging in todo:
                shutil.rmtree(staging, ignore_errors=True)
        logger.info(
            "prepared %d pictures in %d shards in %.1f s (%s)", total, len(plans), time.perf_counter() - started,
            runner.name,
        )
        return [sealed[plan.name] for plan in plans]

    def _sealed(self, target: Path, plan: _Plan) -> _Shard | None:
        """The sealed shard at ``target`` when it holds exactly what ``plan`` asks for, intact."""
        try:
            meta = json.loads((target / SHARD_MANIFEST).read_text(encoding="utf-8"))
            if (
                meta.get("version") != INDEX_VERSION
                or meta.get("key") != self.key
                or int(meta["first_row"]) != plan.first_row
                or list(meta["item_ids"]) != plan.item_ids
                or sorted(meta["vectors"]) != sorted(self.stems)
            ):
                return None
            store.verify_files(target, meta)
            return _Shard(plan.name, plan.first_row, len(plan.item_ids), dict(meta["vectors"]), meta["files"])
        except (OSError, ValueError, KeyError, TypeError, store.IndexDamaged):
            return None

    def _fill_stems(
        self,
        directory: Path,
        shards: list[_Shard],
        previous: dict[str, Any],
        kept: dict[str, dict[str, Any]],
        first_new: int,
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Choose each searcher's kind and write its FAISS files: a stem that is (or becomes) large gets an
        IVF index trained on a sample of its descriptors, filled one shard at a time into one file per
        shard; shards before ``first_new`` keep their files (``kept``: the manifest's entries) when the stem
        was already trained. Returns the manifest's ``stems`` entry and the searchers' files."""
        stems: dict[str, Any] = {}
        files: dict[str, dict[str, Any]] = {}
        fills: list[_FillTask] = []
        for stem, (level, patch) in self.stems.items():
            counts = [shard.vectors[stem] for shard in shards]
            total = int(sum(counts))
            kind = self.force_backend or ("exact" if total <= self.settings.exact_max_vectors else "faiss")
            if total < _MIN_FAISS_VECTORS:
                kind = "exact"
            stems[stem] = {"kind": kind, "count": total, "patch": patch, "level": level}
            if kind != "faiss":
                continue
            before = previous.get(stem) if isinstance(previous.get(stem), dict) else {}
            reuse = _kept_trained(stem, before, kept, first_new, files)
            if reuse:
                stems[stem]["encoding"] = str(before.get("encoding", "Flat"))
                stems[stem]["recall"] = dict(before.get("recall") or {})
            else:
                trained, recipe = self._trained(directory, shards, stem, total)
                files[f"{TRAINED}/{stem}.faiss"] = _write_faiss(directory, f"{TRAINED}/{stem}.faiss", trained)
                stems[stem]["encoding"], stems[stem]["recall"] = recipe.encoding, recipe.recall
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
            fills += _fill_tasks(directory, shards, stem, f"{stem}.vec.npy", offsets, reuse, first_new, kept, files)
        # every shard's lists are filled from the trained index on their own (in parallel on Ray)
        for task, meta in zip(fills, shard_runner().map(_fill_lists, fills), strict=True):
            files[task.output] = meta
        for stem, meta in stems.items():
            if meta["kind"] == "faiss":
                before = previous.get(stem) if isinstance(previous.get(stem), dict) else {}
                meta["merged"] = _merged_lists(directory, stem, shards, before, kept, first_new, files)
        return stems, files

    def _trained(self, directory: Path, shards: list[_Shard], stem: str, total: int) -> tuple[Any, Recipe]:
        """An empty IVF index for ``stem``, trained on a seeded sample drawn from every shard's file, its
        lists' encoding chosen by recall on held-out descriptors (see :func:`choose_recipe`)."""
        parts = [store.load_array(directory / SHARDS / s.name / f"{stem}.vec.npy", mmap=True) for s in shards]
        vectors = ShardedArray(parts)
        rows = training_rows(total)
        sample = np.asarray(vectors[rows] if rows is not None else vectors[:], dtype=np.float32)
        rng = np.random.default_rng(1)
        held_out = rng.choice(total, min(total, _RECALL_QUERIES * 2), replace=False)
        if rows is not None:
            held_out = held_out[~np.isin(held_out, rows)]
        queries = np.asarray(vectors[np.sort(held_out[:_RECALL_QUERIES])], dtype=np.float32)
        index, recipe = choose_recipe(sample, queries, total, self.settings.top_k, self.settings.nprobe)
        logger.info(
            "trained the %s search lists on %d of %d descriptors (%s)", stem, sample.shape[0], total, recipe
        )
        return index, recipe

    def _fill_global(
        self,
        directory: Path,
        shards: list[_Shard],
        previous: dict[str, Any],
        kept: dict[str, dict[str, Any]],
        first_new: int,
        files: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """The whole-image index: exact while the descriptors are few, else a compressed FAISS index trained
        once and filled shard by shard like the patch searchers' (``files`` gets its files). Returns the
        manifest's ``global`` entry."""
        descriptors = self._sharded(directory, shards, "global.npy")
        count = int(descriptors.shape[0])
        total = count * len(BOXES)
        kind = self.force_backend or ("exact" if total <= self.settings.exact_max_vectors else "faiss")
        if kind != "faiss" or total < _MIN_GLOBAL_FAISS:
            return {"kind": "exact", "count": count}
        reuse = _kept_trained("global", previous, kept, first_new, files)
        if not reuse:
            trained_name = f"{TRAINED}/global.faiss"
            files[trained_name] = _write_faiss(directory, trained_name, CompressedGlobal.trained(descriptors))
        offsets = [shard.first_row for shard in shards]
        fills = _fill_tasks(directory, shards, "global", "global.npy", offsets, reuse, first_new, kept, files)
        for task, meta in zip(fills, shard_runner().map(_fill_global_lists, fills), strict=True):
            files[task.output] = meta
        return {"kind": "faiss", "count": count, "nprobe": _GLOBAL_NPROBE}

    def _sharded(self, directory: Path, shards: list[_Shard], name: str) -> ShardedArray:
        return ShardedArray([store.load_array(directory / SHARDS / s.name / name, mmap=True) for s in shards])

    def _seal(
        self,
        directory: Path,
        library: str,
        item_ids: list[str],
        shards: list[_Shard],
        stems: dict[str, Any],
        files: dict[str, dict[str, Any]],
        global_meta: dict[str, Any],
    ) -> None:
        """Write the manifest that makes the new shards and search lists part of the index."""
        listed = dict(files)
        for shard in shards:
            listed.update({f"{SHARDS}/{shard.name}/{name}": meta for name, meta in shard.files.items()})
        manifest = {
            "version": INDEX_VERSION,
            "library": library,
            "space": self.space.name,
            "key": self.key,
            "settings": self.settings.to_json(),
            "channels": int(self._channels(directory, shards)),
            "factor": self.space.factor,
            "work_size": self.settings.work_size,
            "item_ids": item_ids,
            "shards": [shard.to_json() for shard in shards],
            "stems": stems,
            "global_boxes": len(BOXES),
            "global": global_meta,
            "files": listed,
        }
        tmp = directory / f".{store.MANIFEST}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(tmp, directory / store.MANIFEST)
        _drop_unlisted(directory, listed)

    @staticmethod
    def _channels(directory: Path, shards: list[_Shard]) -> int:
        first = store.load_array(directory / SHARDS / shards[0].name / "pixels.npy", mmap=True)
        return int(first.shape[1])

    # -- loading --------------------------------------------------------------------------------

    def _load(self, directory: Path) -> PatchIndex:
        cached = _CACHE.get(str(directory))
        if cached is not None and cached[0] == _signature(directory):
            return cached[1]
        if not (directory / store.MANIFEST).is_file() and (directory / SHARDS).is_dir():
            raise store.IndexMissing("its build stopped before it was finished")
        manifest = store.read_manifest(directory)
        if manifest.get("version") != INDEX_VERSION or manifest.get("key") != self.key:
            raise store.IndexDamaged("it was made by another version of the studio")
        try:
            item_ids = [str(v) for v in manifest["item_ids"]]
            channels = int(manifest["channels"])
            shards = [(str(s["name"]), int(s["first_row"]), int(s["count"])) for s in manifest["shards"]]
            stems = {stem: dict(meta) for stem, meta in manifest["stems"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise store.IndexDamaged("its manifest is incomplete") from exc
        if sorted(stems) != sorted(self.stems):
            raise store.IndexDamaged("it was made with other patch sizes")
        expected = 0
        for _, first, n in shards:
            if first != expected:
                raise store.IndexDamaged("its shards do not add up to its pictures")
            expected += n
        if not shards or expected != len(item_ids):
            raise store.IndexDamaged("its shards do not add up to its pictures")
        if store.verify_files(directory, manifest):  # by size and time; hashed only where those changed
            store.note_files(directory, manifest)
        size = self.settings.work_size

        def sharded(name: str) -> ShardedArray:
            parts = [store.load_array(directory / SHARDS / shard / name, mmap=True) for shard, _, _ in shards]
            for part, (_, _, n) in zip(parts, shards, strict=True):
                if part.shape[0] != n:
                    raise store.IndexDamaged(f"its {name} files do not match its pictures")
            try:
                return ShardedArray(parts)
            except ValueError as exc:
                raise store.IndexDamaged(f"its {name} files do not fit together") from exc

        pixels = sharded("pixels.npy")
        globals_ = sharded("global.npy")
        features = sharded("features.npy") if self.space.factor != 1 else None
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (channels, size, size):
            raise store.IndexDamaged("its images have an unexpected shape")
        if globals_.dtype != np.float16 or globals_.ndim != 3 or globals_.shape[1] != len(BOXES):
            raise store.IndexDamaged("its whole-image descriptors have an unexpected shape")
        global_meta = dict(manifest.get("global") or {})
        try:
            if global_meta.get("kind") == CompressedGlobal.kind:
                lists = [directory / LISTS / "global" / f"{s}.faiss" for s, _, _ in shards]
                nprobe = int(global_meta["nprobe"])
                stacked = ShardedFaissSearch(directory / TRAINED / "global.faiss", lists, nprobe)
                global_index: GlobalIndex = CompressedGlobal(globals_, stacked.index, nprobe, owner=stacked)
            else:
                global_index = ExactGlobal(globals_)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise store.IndexDamaged(f"its whole-image search index could not be read ({exc})") from exc
        loaded: dict[str, ScaleIndex] = {}
        for stem, (_, patch) in self.stems.items():
            loaded[stem] = self._load_scale(
                directory, stem, patch, stems[stem], [s for s, _, _ in shards], manifest["files"]
            )
        scales = {p: loaded[f"scale-{p}"] for p in self.scales}
        levels = {k: {p: loaded[f"level-{k:g}-scale-{p}"] for p in self.patches[k]} for k in self.levels}
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

    def _load_scale(
        self, directory: Path, stem: str, patch: int, meta: dict, shards: list[str], listed: dict[str, Any]
    ) -> ScaleIndex:
        try:
            rows = ShardedArray(
                [store.load_array(directory / SHARDS / s / f"{stem}.rows.npy", mmap=True) for s in shards]
            )
            if meta.get("kind") == "faiss":
                merged = meta.get("merged") or {}
                count = int(merged.get("shards", 0)) if merged else 0
                if not 0 <= count <= len(shards):
                    raise ValueError("merged lists of more shards than the index has")
                lists = [directory / LISTS / stem / f"{s}.faiss" for s in shards[count:]]
                if count:
                    name = str(merged["file"])
                    if not name.startswith(f"{LISTS}/{stem}/merged-") or name not in listed:
                        raise ValueError("merged lists the manifest does not list")
                    lists.insert(0, directory / name)
                exact = None  # compressed lists' hits are re-ranked with the exact (float16) descriptors
                if meta.get("encoding", "Flat") != "Flat":
                    exact = ShardedArray(
                        [store.load_array(directory / SHARDS / s / f"{stem}.vec.npy", mmap=True) for s in shards]
                    )
                searcher: Searcher = ShardedFaissSearch(
                    directory / TRAINED / f"{stem}.faiss", lists, self.settings.nprobe, vectors=exact
                )
            else:
                parts = [store.load_array(directory / SHARDS / s / f"{stem}.vec.npy") for s in shards]
                searcher = ExactSearch(np.concatenate(parts).astype(np.float32))
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise store.IndexDamaged(f"its {stem} search index could not be read") from exc
        if rows.ndim != 2 or rows.shape[1] != 3 or rows.shape[0] != searcher.count:
            raise store.IndexDamaged(f"its {stem} patch list does not match its search index")
        if searcher.count != int(meta.get("count", -1)):
            raise store.IndexDamaged(f"its {stem} search index holds other patches than its manifest says")
        return ScaleIndex(patch, searcher, rows)


def _cannot_write(what: str, exc: OSError) -> str:
    """What to tell the person when the search data could not be written (what was finished is kept)."""
    if exc.errno == errno.ENOSPC:
        advice = "The disk is full: free some space and try again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = f"The studio may not write to {config.data_dir()}: give it write access and try again"
    else:
        advice = "Try again; if it keeps happening, check the disk"
    return (
        f"{what} could not be prepared for the check ({exc.strerror or exc}). {advice}: "
        "what was already prepared is kept and used."
    )


def _stack(parts: list[np.ndarray], empty: tuple[int, int], dtype: Any) -> np.ndarray:
    parts = [p for p in parts if p.shape[0]]
    if not parts:
        return np.zeros(empty, dtype=dtype)
    return np.concatenate(parts).astype(dtype)


def _write_with(directory: Path, name: str, write: Any) -> dict[str, Any]:
    """Write ``directory/name`` through ``write(path)`` into a temporary file renamed into place (readers
    that mapped the old file keep it); returns its manifest entry."""
    target = directory / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        meta = store.file_meta(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    info = target.stat()
    return dict(meta, mtime_ns=info.st_mtime_ns, ino=info.st_ino)


@dataclass
class _FillTask:
    """Fill one shard's search lists of one searcher: paths relative to the index folder ``directory``;
    the vectors get ids ``offset``… (their rows in the searcher's patch list)."""

    directory: str
    trained: str
    vectors: str
    offset: int
    output: str


def _kept_trained(
    name: str, before: dict[str, Any], kept: dict[str, dict[str, Any]], first_new: int, files: dict[str, Any]
) -> bool:
    """On an append (``first_new`` > 0), keep ``trained/<name>.faiss`` of an index that was already
    compressed (``before``: its manifest entry; the file goes into ``files``); False: train it anew."""
    trained_name = f"{TRAINED}/{name}.faiss"
    if before.get("kind") == "faiss" and first_new > 0 and trained_name in kept:
        files[trained_name] = kept[trained_name]
        return True
    return False


def _fill_tasks(
    directory: Path,
    shards: list[_Shard],
    name: str,
    source: str,
    offsets: list[int],
    reuse: bool,
    first_new: int,
    kept: dict[str, dict[str, Any]],
    files: dict[str, dict[str, Any]],
) -> list[_FillTask]:
    """The shards whose ``lists/<name>/<shard>.faiss`` must be filled from ``trained/<name>.faiss`` with their
    ``source`` file (ids from ``offsets[i]``); with ``reuse``, the lists of shards before ``first_new`` are
    kept as they are (their manifest entries go into ``files``)."""
    tasks = []
    for i, shard in enumerate(shards):
        output = f"{LISTS}/{name}/{shard.name}.faiss"
        if reuse and i < first_new and output in kept:
            files[output] = kept[output]
        else:
            vectors = f"{SHARDS}/{shard.name}/{source}"
            tasks.append(_FillTask(str(directory), f"{TRAINED}/{name}.faiss", vectors, offsets[i], output))
    return tasks


def _merged_lists(
    directory: Path,
    stem: str,
    shards: list[_Shard],
    before: dict[str, Any],
    kept: dict[str, dict[str, Any]],
    first_new: int,
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The manifest entry of ``stem``'s merged lists (``{"shards": m, "file": name}``: the lists of the first
    ``m`` shards in one file, see :func:`~core.analyzer.search.merge_lists`; ``{}``: none), their files put in
    ``files``. The previous merge is kept while it covers only kept shards and few shards are left out of it
    (:data:`MERGE_AFTER`): adding pictures does not rewrite the lists; else every shard is merged anew."""
    total = len(shards)
    merged = before.get("merged") if isinstance(before.get("merged"), dict) else {}
    name = str(merged.get("file", ""))
    count = int(merged.get("shards", 0) or 0)
    data = name.removesuffix(".faiss") + ".ivfdata"
    trained_kept = f"{TRAINED}/{stem}.faiss" in kept and files.get(f"{TRAINED}/{stem}.faiss") == kept.get(
        f"{TRAINED}/{stem}.faiss"
    )
    if (
        count
        and trained_kept
        and count <= first_new
        and name in kept
        and data in kept
        and total - count <= max(MERGE_AFTER, total // 8)
    ):
        files[name], files[data] = kept[name], kept[data]
        return {"shards": count, "file": name}
    if total <= MERGE_AFTER:
        return {}
    name = f"{LISTS}/{stem}/merged-{uuid.uuid4().hex[:12]}.faiss"
    data = name.removesuffix(".faiss") + ".ivfdata"
    merge_lists(
        directory / TRAINED / f"{stem}.faiss",
        [directory / LISTS / stem / f"{shard.name}.faiss" for shard in shards],
        directory / name,
    )
    files[name], files[data] = store.file_meta(directory / name), store.file_meta(directory / data)
    logger.info("merged the %s search lists of %d shards", stem, total)
    return {"shards": total, "file": name}


def _fill_lists(task: _FillTask) -> dict[str, Any]:
    """Add a shard's descriptors to a copy of the trained index and write it (runs here or on Ray)."""
    import faiss

    directory = Path(task.directory)
    filled = faiss.read_index(str(directory / task.trained))
    part = store.load_array(directory / task.vectors)
    if part.shape[0]:
        ids = np.arange(task.offset, task.offset + part.shape[0], dtype=np.int64)
        filled.add_with_ids(for_faiss(part, filled.d), ids)
    return _write_faiss(directory, task.output, filled)


def _fill_global_lists(task: _FillTask) -> dict[str, Any]:
    """One shard's whole-image descriptors added to a copy of the trained whole-image index (``offset``:
    the shard's first row; ids are row·boxes + box)."""
    import faiss

    directory = Path(task.directory)
    filled = faiss.read_index(str(directory / task.trained))
    descriptors = store.load_array(directory / task.vectors, mmap=True)
    CompressedGlobal.fill_rows(filled, descriptors, task.offset)
    return _write_faiss(directory, task.output, filled)


def _write_faiss(directory: Path, name: str, index: Any) -> dict[str, Any]:
    import faiss

    return _write_with(directory, name, lambda path: faiss.write_index(index, str(path)))


def _clear_for_build(directory: Path) -> None:
    """Before a build: remove everything but finished shards (a stopped build goes on from them)."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.name == SHARDS and entry.is_dir():
            for part in entry.iterdir():
                if part.name.startswith("."):
                    shutil.rmtree(part, ignore_errors=True)
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _drop_other_shards(directory: Path, keep: set[str]) -> None:
    for entry in (directory / SHARDS).iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)


def _drop_unlisted(directory: Path, listed: dict[str, Any]) -> None:
    """Remove the searchers' files the manifest no longer lists (a stem that was trained again, say)."""
    for folder in (directory / TRAINED, directory / LISTS):
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if path.is_file() and path.relative_to(directory).as_posix() not in listed:
                path.unlink(missing_ok=True)


def _signature(directory: Path) -> tuple:
    """The manifest's size, time and inode (it is replaced whenever the index changes)."""
    try:
        info = (directory / store.MANIFEST).stat()
    except OSError:
        return ()
    return (info.st_size, info.st_mtime_ns, info.st_ino)


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


#: Under the indexes folder, the folder of the workspaces' own libraries' indexes (``<it>/<workspace>/<library>``).
WORKSPACE_INDEXES = "_workspaces"


def library_indexes(libraries: LibraryManager, library: str, root: Path | None = None) -> Path:
    """The folder of every index of ``library`` (one per settings key); a workspace's own libraries get a
    folder of their own."""
    base = Path(root) if root is not None else store.indexes_root()
    owner = libraries.owner(library)
    if owner is not None and owner != config.DEFAULT_WORKSPACE:
        base = base / WORKSPACE_INDEXES / owner
    return base / library


def indexed_libraries(root: Path | None = None) -> list[tuple[str, str, Path]]:
    """(workspace, library, :func:`library_indexes` folder) of every library that has index folders; the
    default workspace's and the built-in libraries are listed under the default workspace."""
    base = Path(root) if root is not None else store.indexes_root()
    found: list[tuple[str, str, Path]] = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        found.append((config.DEFAULT_WORKSPACE, folder.name, folder))
    others = base / WORKSPACE_INDEXES
    if others.is_dir():
        for workspace in sorted(p for p in others.iterdir() if p.is_dir()):
            for folder in sorted(p for p in workspace.iterdir() if p.is_dir() and not p.name.startswith(".")):
                found.append((workspace.name, folder.name, folder))
    return found


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
