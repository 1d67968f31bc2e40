"""The patch-mosaic analyzer: which library images an image recombines, and how much.

Entry point: :func:`analyze_image` (or :class:`Analyzer` to keep settings and a library manager).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.analyzer.assign import Assignment, DenseAssigner
from core.analyzer.features import LatentSpace, PixelSpace, fit_query
from core.analyzer.index import IndexManager, PatchIndex
from core.analyzer.nearcopy import NearCopyChecker
from core.analyzer.pyramid import LevelLibrary, LevelMaps, level_side, resized, to_base
from core.analyzer.result import AnalysisResult, NearCopy, Region, ScaleResult
from core.analyzer.scoring import regions_and_shares
from core.analyzer.settings import SPACES, AnalyzerSettings, ProgressFn
from core.analyzer.shortlist import fine_scale_index, patches_per_image, shortlist
from core.analyzer.verdict import verdict_from_search
from core.analyzer.voting import Candidate, OffsetVoter, supported
from core.errors import BadInputError
from core.images import from_tensor, load_image, load_image_file
from core.libraries import LibraryManager

logger = logging.getLogger(__name__)

ImageInput = Image.Image | bytes | str | Path


#: a region this large (fraction of the image) is checked as a possible crop of its whole picture
_CROP_CHECK_REGION = 0.15


class _Stage:
    """Progress through ``total`` equal pieces of work, reported between ``low`` and ``high``."""

    def __init__(self, report: ProgressFn | None, low: float, high: float, message: str) -> None:
        self.report, self.low, self.high, self.message = report, low, high, message
        self.total, self.count = 1, 0

    @classmethod
    def silent(cls) -> _Stage:
        return cls(None, 0.0, 1.0, "")

    def done(self) -> None:
        """One piece finished: the bar moves by its share, the message says how far ("2 of 5")."""
        self.count += 1
        if self.report is not None:
            share = min(1.0, self.count / max(1, self.total))
            self.report(self.low + (self.high - self.low) * share, f"{self.message} ({self.count} of {self.total})…")


class _Report:
    """The analysis' progress callback, or nothing; hands out :class:`_Stage` for the long loops."""

    def __init__(self, on_progress: ProgressFn | None) -> None:
        self.on_progress = on_progress

    def __call__(self, fraction: float, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(fraction, message)

    def stage(self, low: float, high: float, message: str) -> _Stage:
        return _Stage(self.on_progress, low, high, message)


def _window(patch: int) -> int:
    return max(3, (patch // 2) | 1)


def _as_image(image: ImageInput) -> tuple[Image.Image, list[str]]:
    if isinstance(image, Image.Image):
        if image.width < 1 or image.height < 1:
            raise BadInputError("The image to analyse has no pixels.")
        return image, []
    if isinstance(image, (bytes, bytearray)):
        loaded = load_image(bytes(image), "The image to analyse")
        return loaded.image, loaded.notices
    if isinstance(image, (str, Path)):
        loaded = load_image_file(image)
        return loaded.image, loaded.notices
    raise BadInputError("The image to analyse must be a picture (PNG, JPEG, ...).")


class _SourceNames(Mapping[int, tuple[str, str]]):
    """Library position -> (item id, shown name), without a tuple made for each of the library's pictures."""

    def __init__(self, ids: Sequence[str], shown: Mapping[int, str]) -> None:
        self._ids = ids
        self._shown = shown

    def __getitem__(self, position: int) -> tuple[str, str]:
        if not 0 <= position < len(self._ids):
            raise KeyError(position)
        return self._ids[position], self._shown[position]

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._ids)))


class Analyzer:
    """Analyses images against libraries; indexes are built on first use and kept up to date."""

    def __init__(
        self,
        libraries: LibraryManager | None = None,
        settings: AnalyzerSettings | None = None,
        index_root: Path | None = None,
        force_backend: str | None = None,
    ) -> None:
        self.libraries = libraries or LibraryManager()
        self.settings = settings or AnalyzerSettings()
        self.index_root = index_root
        self.force_backend = force_backend

    def _space(self, space: str, vae: Any):
        if space not in SPACES:
            raise BadInputError(f"Unknown analysis space {space!r}: choose 'pixel' or 'latent'.")
        return PixelSpace() if space == "pixel" else LatentSpace(vae)

    def index(self, library: str, space: str = "pixel", vae: Any = None, on_progress: ProgressFn | None = None):
        """Build or update the index of ``library`` now (e.g. right after an import). Returns (index, notices)."""
        manager = IndexManager(self.settings, self._space(space, vae), self.libraries, self.index_root,
                               self.force_backend)
        return manager.open(library, on_progress)

    def analyze(
        self,
        image: ImageInput,
        library: str,
        space: str = "pixel",
        vae: Any = None,
        on_progress: ProgressFn | None = None,
    ) -> AnalysisResult:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        picture, notices = _as_image(image)
        feature_space = self._space(space, vae)
        manager = IndexManager(self.settings, feature_space, self.libraries, self.index_root, self.force_backend)

        def index_progress(fraction: float, message: str) -> None:
            if on_progress is not None:
                on_progress(0.6 * fraction, message)

        index, index_notices = manager.open(library, index_progress)
        notices.extend(index_notices)
        timings["index"] = time.perf_counter() - started
        report = _Report(on_progress)
        report(0.6, "Looking for borrowed pieces…")

        ids = self.libraries.item_ids(library)
        position = {item_id: i for i, item_id in enumerate(ids)}
        row_to_index = np.array([position.get(item_id, -1) for item_id in index.item_ids], dtype=np.int64)
        allowed = row_to_index >= 0
        # library position -> (id, the name people see, as on every page), looked up for the sources only
        names = _SourceNames(ids, self.libraries.source_names(library))

        factor = index.factor
        query_pixels = fit_query(picture, self.settings.work_size, index.channels, multiple=factor)
        t0 = time.perf_counter()
        features = feature_space.encode(query_pixels[None])
        structure = feature_space.structure(features)
        grid_size = self.settings.work_size // factor
        query_levels = self._query_levels(features[0], index)
        voter = OffsetVoter(self.settings)  # one for the analysis: it describes the image once per patch size
        per_scale, fine, level_votes = self._search(
            index, feature_space, features, structure, allowed, grid_size, query_levels, voter,
            report.stage(0.6, 0.75, "Looking for borrowed pieces"),
        )
        timings["search"] = time.perf_counter() - t0
        report(0.75, "Putting the mosaic together…")

        t0 = time.perf_counter()
        query = features[0]
        if factor == 1:
            noise = 0.06
        else:
            noise = 0.12 * float(query.std())
        assigner = DenseAssigner(self.settings, index, noise, feature_space.structure)
        main_window = max(3, (self.settings.window // factor) | 1)
        # votes count patches, and a coarser feature grid (latents) has factor² fewer patches per region
        min_votes = self.settings.min_votes / factor**2
        found = supported([c for cands in per_scale.values() for c in cands], min_votes)
        refined = assigner.refine(query, found, main_window)
        union: dict[tuple[int, int, int], Candidate] = {}
        for cand in sorted(refined, key=lambda c: -c.votes):
            union.setdefault(cand.key, cand)
        main = assigner.assign(query, list(union.values()), main_window)
        scale_assignments = {
            patch: assigner.assign(query, [c for c in refined if c.scale == patch], _window(patch))
            for patch in per_scale
        }
        timings["assign"] = time.perf_counter() - t0

        report(0.83, "Checking for a copy of a whole picture…")
        t0 = time.perf_counter()
        checker = NearCopyChecker(index.global_index, index.pixels)
        match = checker.check(query_pixels, allowed)
        timings["near_copy"] = time.perf_counter() - t0

        height, width = query_pixels.shape[1:]
        source_map, source_yx, offset_map, similarity = self._maps(main, row_to_index, factor, height, width)
        t0 = time.perf_counter()
        levels = self._other_sizes(index, feature_space, features, structure, allowed, row_to_index, noise,
                                   query_levels, level_votes, voter, source_map < 0,
                                   report.stage(0.86, 0.98, "Looking for pieces shown larger or smaller"))
        scale_map = self._merge(levels, source_map, source_yx, offset_map, similarity)
        timings["other_sizes"] = time.perf_counter() - t0
        shares, regions = regions_and_shares(source_map, source_yx, names, scale_map)
        borrowed = float((source_map >= 0).mean())
        largest = regions[0].area if regions else 0.0
        largest_source = next((s for s in shares if regions and s.index == regions[0].source), None)

        near = NearCopy(is_copy=False, score=0.0)
        if match is not None:
            index_pos = int(row_to_index[match.row])
            item_id, name = names.get(index_pos, ("?", "?"))
            near = NearCopy(
                is_copy=match.score >= self.settings.copy_threshold,
                score=match.score,
                index=index_pos,
                item_id=item_id,
                name=name,
                mirrored=match.variant.endswith("+mirror"),
                crop=match.box,
                reason="whole image matches after alignment" if match.score >= self.settings.copy_threshold else "",
            )
        if not near.is_copy and regions and largest >= _CROP_CHECK_REGION:
            crop = self._crop_copy(checker, query_pixels, regions[0], source_yx, scale_map, row_to_index, names)
            if crop is not None:
                near = crop
        if not near.is_copy and largest >= self.settings.copy_region_fraction and largest_source is not None:
            near = NearCopy(
                is_copy=True,
                score=max(near.score, largest),
                index=largest_source.index,
                item_id=largest_source.item_id,
                name=largest_source.name,
                reason=f"one region covers {largest * 100:.0f} % of the image",
            )
        verdict = verdict_from_search(borrowed, shares, largest, largest_source, near)  # the one rule
        risk, originality, summary = verdict.risk, verdict.originality, verdict.summary

        scales: dict[int, ScaleResult] = {}
        for patch, assignment in scale_assignments.items():
            smap, syx, _, ssim = self._maps(assignment, row_to_index, factor, height, width)
            s_shares, s_regions = regions_and_shares(smap, syx, names)
            s_largest = s_regions[0].area if s_regions else 0.0
            scales[patch * factor] = ScaleResult(
                patch=patch * factor,
                source_map=smap,
                source_yx=syx,
                similarity=ssim,
                sources=s_shares,
                regions=s_regions,
                borrowed_fraction=float((smap >= 0).mean()),
                largest_region_fraction=s_largest,
                largest_region_source=next(
                    (s for s in s_shares if s_regions and s.index == s_regions[0].source), None
                ),
            )
        timings["total"] = time.perf_counter() - started
        report(1.0, "Analysis done")
        logger.info("analysed image against %s (%s): %s", library, space, summary)
        return AnalysisResult(
            library=library,
            space=feature_space.name,
            image_size=picture.size,
            source_map=source_map,
            source_yx=source_yx,
            offset_map=offset_map,
            similarity=similarity,
            sources=shares,
            regions=regions,
            borrowed_fraction=borrowed,
            largest_region_fraction=largest,
            largest_region_source=largest_source,
            near_copy=near,
            originality=originality,
            copy_risk=risk,
            summary=summary,
            scales=scales,
            notices=notices,
            timings=timings,
            backend=index.backend(),
            work_size=self.settings.work_size,
            analysed_image=from_tensor(query_pixels),
        )

    def _query_levels(self, query: torch.Tensor, index: PatchIndex) -> dict[float, torch.Tensor]:
        """The checked image reduced by ``1 / k`` for every enlargement ``k`` looked for (pixel space)."""
        height, width = query.shape[1:]
        out: dict[float, torch.Tensor] = {}
        smallest = min(index.scales) if index.scales else 8
        for k in self.settings.query_levels(index.factor):
            side_h, side_w = max(1, int(round(height / k))), max(1, int(round(width / k)))
            if min(side_h, side_w) < smallest:
                continue
            out[k] = resized(query[None], side_h, side_w)[0]
        return out

    def _search(
        self,
        index: PatchIndex,
        space: Any,
        features: torch.Tensor,
        structure: torch.Tensor,
        allowed: np.ndarray,
        grid_size: int,
        query_levels: dict[float, torch.Tensor],
        voter: OffsetVoter,
        report: _Stage | None = None,
    ) -> tuple[dict[int, list[Candidate]], dict[int, Any], dict[float, list[Candidate]]]:
        """Offset candidates per patch size: indexed (large) sizes over the whole library, largest first,
        then small sizes over the library images those point to most (see :mod:`.shortlist`).

        Also the candidates of every reduced copy of the checked image (``query_levels``): their large
        patches count towards the shortlist too, and they are searched with the same small-patch index.
        Returns (candidates per patch size, the small-patch indexes, candidates per query level).
        ``report`` hears of every search done (of all of them)."""
        report = report or _Stage.silent()
        fine_patches = sorted(set(self.settings.scales_for(index.factor)) - set(index.scales), reverse=True)
        report.total = len(index.scales) * (1 + len(query_levels)) + len(fine_patches)
        # offsets are bounded by the larger of the library side and the (possibly wider) checked image
        bound = max(grid_size, *features.shape[-2:])
        per_scale: dict[int, list[Candidate]] = {}
        per_level: dict[float, list[Candidate]] = {k: [] for k in query_levels}
        scores = np.zeros(allowed.shape[0], dtype=np.float64)
        for patch in sorted(index.scales, reverse=True):
            votes = voter.candidates(index.scales[patch], features, structure, allowed, bound)
            per_scale[patch] = votes.candidates
            scores += votes.image_scores
            report.done()
        level_inputs = {k: (q[None], space.structure(q[None])) for k, q in query_levels.items()}
        for k, (q, q_structure) in level_inputs.items():
            for patch in sorted(index.scales, reverse=True):
                votes = voter.candidates(index.scales[patch], q, q_structure, allowed, bound)
                per_level[k].extend(votes.candidates)
                scores += votes.image_scores
                report.done()
        fine: dict[int, Any] = {}
        for patch in fine_patches:
            limit = max(1, self.settings.shortlist_vectors // max(1, patches_per_image(grid_size, patch)))
            rows = shortlist(scores, allowed, limit)
            scale = fine_scale_index(index, rows, patch, self.settings, space.structure)
            fine[patch] = scale
            votes = voter.candidates(scale, features, structure, allowed, bound)
            per_scale[patch] = votes.candidates
            small_levels = {k: v for k, v in level_inputs.items() if k <= self.settings.small_patches_up_to}
            if small_levels:
                # the reduced copies hold up to twice the patches of the image: search only the best few
                best = rows[scores[rows] > 0]
                best = best[np.argsort(-scores[best], kind="stable")][: self.settings.level_shortlist_images]
                level_scale = fine_scale_index(index, best, patch, self.settings, space.structure)
                for k, (q, q_structure) in small_levels.items():
                    per_level[k].extend(voter.candidates(level_scale, q, q_structure, allowed, bound).candidates)
            logger.debug("%d px patches: %d shortlisted images, %d candidates", patch, rows.shape[0],
                         len(votes.candidates))
            report.done()
        return dict(sorted(per_scale.items())), fine, per_level

    def _other_sizes(
        self,
        index: PatchIndex,
        space: Any,
        features: torch.Tensor,
        structure: torch.Tensor,
        allowed: np.ndarray,
        row_to_index: np.ndarray,
        noise: float,
        query_levels: dict[float, torch.Tensor],
        level_votes: dict[float, list[Candidate]],
        voter: OffsetVoter,
        free: np.ndarray,
        report: _Stage | None = None,
    ) -> list[LevelMaps]:
        """Library content at other sizes (see :mod:`.pyramid`), each level's result on the base grid.

        ``features``, ``structure``: the checked image's (1, C, H, W), as the whole-size search had them.
        ``free``: (H, W) bool, the pixels the whole-size search left unexplained. Other sizes only fill those
        (:meth:`_merge`), so the library's reduced sizes are searched with the patches that cover one of
        them only, and not at all when none is left (a near copy explained whole)."""
        report = report or _Stage.silent()
        report.total = len(index.levels) + len(query_levels)
        if not free.any():
            return []
        s = self.settings
        window = max(3, s.window | 1)
        query = features[0]
        height, width = query.shape[1:]
        out: list[LevelMaps] = []
        for k, scales in sorted(index.levels.items()):
            side = level_side(index.work_size, k)
            found: list[Candidate] = []
            for patch in sorted(scales, reverse=True):
                found.extend(voter.candidates(scales[patch], features, structure, allowed,
                                              max(height, width, side), s.level_nprobe, free).candidates)
            assignment = self._assign_level(LevelLibrary(index, side), space, query, found, noise, window)
            report.done()
            if assignment is None:
                continue
            smap, syx, _, sim = self._maps(assignment, row_to_index, 1, height, width)
            out.append(LevelMaps(*to_base(smap, syx, sim, height, width, side / index.work_size), scale=k))
        for k, small in query_levels.items():
            assignment = self._assign_level(index, space, small, level_votes.get(k, []), noise, window)
            report.done()
            if assignment is None:
                continue
            level_h, level_w = small.shape[1:]
            smap, syx, _, sim = self._maps(assignment, row_to_index, 1, level_h, level_w)
            out.append(LevelMaps(*to_base(smap, syx, sim, height, width, 1.0), scale=k))
        return out

    def _assign_level(
        self, library: Any, space: Any, query: torch.Tensor, candidates: list[Candidate], noise: float, window: int
    ) -> Assignment | None:
        found = supported(candidates, self.settings.level_min_votes)
        if not found:
            return None
        assigner = DenseAssigner(self.settings, library, noise, space.structure)
        refined = assigner.refine(query, found, window)
        union: dict[tuple[int, int, int], Candidate] = {}
        for cand in sorted(refined, key=lambda c: -c.votes):
            union.setdefault(cand.key, cand)
        if not union:
            return None
        assignment = assigner.assign(query, list(union.values()), window, self.settings.level_two_way_anchors)
        return assignment if (assignment.candidate >= 0).any() else None

    def _crop_copy(
        self,
        checker: NearCopyChecker,
        query_pixels: torch.Tensor,
        region: Region,
        source_yx: np.ndarray,
        scale_map: np.ndarray,
        row_to_index: np.ndarray,
        names: Mapping[int, tuple[str, str]],
    ) -> NearCopy | None:
        """Is the whole image a cropped (and resized, recoloured) copy of the largest region's picture?

        The region says where the image's corner would be in that picture, and at which size; that crop
        is aligned and verified like any near copy (see :meth:`NearCopyChecker.check_box`)."""
        rows = np.nonzero(row_to_index == region.source)[0]
        if rows.shape[0] == 0:
            return None
        top, left, bottom, right = region.box
        inside = np.zeros(source_yx.shape[:2], dtype=bool)
        inside[top:bottom, left:right] = True
        ys, xs = np.nonzero(inside & (source_yx[..., 0] >= 0))
        if ys.shape[0] == 0:
            return None
        k = float(np.median(scale_map[ys, xs]))
        height, width = source_yx.shape[:2]
        side = float(self.settings.work_size)
        corner_y = float(np.median(source_yx[ys, xs, 0] - ys / k))
        corner_x = float(np.median(source_yx[ys, xs, 1] - xs / k))
        box = (corner_y / side, corner_x / side, height / k / side, width / k / side)
        if not all(np.isfinite(box)) or min(box[2], box[3]) <= 0.05:
            return None
        margin = 0.08
        if box[0] < -margin or box[1] < -margin or box[0] + box[2] > 1 + margin or box[1] + box[3] > 1 + margin:
            return None  # the image is bigger than the picture's content: a collage, not a crop
        box = (max(0.0, box[0]), max(0.0, box[1]), min(box[2], 1.0), min(box[3], 1.0))
        box = (min(box[0], 1.0 - box[2]), min(box[1], 1.0 - box[3]), box[2], box[3])
        match = checker.check_box(query_pixels, int(rows[0]), box)
        if match.score < self.settings.copy_threshold:
            return None
        item_id, name = names.get(region.source, ("?", "?"))
        return NearCopy(
            is_copy=True,
            score=match.score,
            index=region.source,
            item_id=item_id,
            name=name,
            crop=match.box,
            reason="the whole image matches a cropped part of it",
        )

    @staticmethod
    def _merge(
        levels: list[LevelMaps],
        source_map: np.ndarray,
        source_yx: np.ndarray,
        offset_map: np.ndarray,
        similarity: np.ndarray,
    ) -> np.ndarray:
        """Fill pixels the working size left unexplained with the best other-size match (in place).
        Returns the per-pixel size of the content relative to its library picture (1 where same size)."""
        scale_map = np.ones(source_map.shape, dtype=np.float32)
        filled = np.full(source_map.shape, -1.0, dtype=np.float32)
        free = source_map < 0
        ys, xs = np.mgrid[0 : source_map.shape[0], 0 : source_map.shape[1]]
        for level in levels:
            take = free & (level.source_map >= 0) & (level.similarity > filled)
            if not take.any():
                continue
            source_map[take] = level.source_map[take]
            source_yx[take] = level.source_yx[take]
            offset_map[take, 0] = level.source_yx[take][:, 0] - ys[take]
            offset_map[take, 1] = level.source_yx[take][:, 1] - xs[take]
            similarity[take] = np.maximum(similarity[take], level.similarity[take])
            filled[take] = level.similarity[take]
            scale_map[take] = level.scale
        return scale_map

    @staticmethod
    def _maps(assignment: Assignment, row_to_index: np.ndarray, factor: int, height: int, width: int):
        """Feature-grid assignment -> pixel maps: library index, source (y, x), offset, similarity."""
        cand = assignment.candidate
        if factor > 1:
            cand = np.repeat(np.repeat(cand, factor, axis=0), factor, axis=1)[:height, :width]
            similarity = np.repeat(np.repeat(assignment.similarity, factor, axis=0), factor, axis=1)[:height, :width]
        else:
            similarity = assignment.similarity
        table_row = np.array([c.row for c in assignment.candidates] + [0], dtype=np.int64)
        table_dy = np.array([c.dy * factor for c in assignment.candidates] + [0], dtype=np.int64)
        table_dx = np.array([c.dx * factor for c in assignment.candidates] + [0], dtype=np.int64)
        slot = np.where(cand >= 0, cand, len(assignment.candidates))
        borrowed = cand >= 0
        source_map = np.where(borrowed, row_to_index[table_row[slot]], -1).astype(np.int32)
        ys, xs = np.mgrid[0:height, 0:width]
        offset = np.stack([table_dy[slot], table_dx[slot]], axis=-1)
        source_yx = np.stack([ys + offset[..., 0], xs + offset[..., 1]], axis=-1)
        source_yx[~borrowed] = -1
        offset[~borrowed] = 0
        source_map[source_map < 0] = -1
        return source_map, source_yx.astype(np.int32), offset.astype(np.int32), similarity.astype(np.float32)


def analyze_image(
    image: ImageInput,
    library: str,
    space: str = "pixel",
    vae: Any = None,
    libraries: LibraryManager | None = None,
    on_progress: ProgressFn | None = None,
    settings: AnalyzerSettings | None = None,
) -> AnalysisResult:
    """Analyse ``image`` (PIL image, image bytes or a path) against ``library``.

    ``space="latent"`` compares SD-VAE latents and needs ``vae`` (a diffusers ``AutoencoderKL``).
    Raises :class:`~core.errors.BadInputError` for unreadable images, unknown or empty libraries.
    """
    return Analyzer(libraries, settings).analyze(image, library, space, vae, on_progress)


def index_library(
    library: str,
    space: str = "pixel",
    vae: Any = None,
    libraries: LibraryManager | None = None,
    on_progress: ProgressFn | None = None,
    settings: AnalyzerSettings | None = None,
) -> tuple[PatchIndex, list[str]]:
    """Build or update the patch index of ``library`` ahead of time. Returns (index, notices)."""
    return Analyzer(libraries, settings).index(library, space, vae, on_progress)


