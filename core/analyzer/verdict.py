"""The one copy verdict: originality, copy risk, the figures behind them and the words shown everywhere.

Every place that tells a person how original an image is (the Mosaic view, the Originality check,
campaign cards, the contact sheet, the CSV manifest, the command line) shows a :class:`Verdict`, so
the same image gets the same numbers and words everywhere. A verdict has one of two bases:

* ``exact``: the studio recorded, while making the image, which library picture every pixel came from
  (:attr:`core.mosaic.Mosaic.sources`). That record is the truth: :func:`verdict_from_exact`.
* ``search``: the analyzer searched the library for pieces of the image (any image, also uploads):
  :func:`verdict_from_analysis` / :func:`verdict_from_search`.

Both bases go through the same rule (:func:`core.analyzer.scoring.copy_risk`,
:func:`~core.analyzer.scoring.originality_score`, :func:`~core.analyzer.scoring.risk_driver`), and the
label shown is always explained by the figure that decided it (:attr:`Verdict.headline`).
See ``docs/originality.md`` for the explanation for non-specialists.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from core.analyzer.scoring import NEAR_COPY_REGION, copy_risk, originality_score, risk_driver

if TYPE_CHECKING:
    from core.analyzer.result import AnalysisResult, NearCopy, SourceShare

logger = logging.getLogger(__name__)

BASES = ("exact", "search")
RISKS = ("low", "medium", "high")
#: the label of each copy risk, in the words shown everywhere
RISK_LABELS = {"low": "Low copy risk", "medium": "Check before use", "high": "High copy risk"}
#: what to do, per copy risk
RISK_ADVICE = {
    "low": "Nothing recognisable from the library is copied: only small pieces, from several pictures.",
    "medium": "A noticeable part comes from one library picture: look at it before publishing.",
    "high": "A recognisable part of a library picture is in this image: do not publish it without the "
    "rights to that picture.",
}
#: exact sources: the smallest piece counted as borrowed (fraction of the image), as for the search
#: (``AnalyzerSettings.min_region_fraction``)
MIN_PIECE = 0.004
#: exact sources: neighbouring pixels from one picture whose offsets differ by at most this many pixels
#: (in y and in x) belong to one piece; the studio often copies a picture with such tiny shifts
OFFSET_JITTER = 1
#: libraries with fewer pictures than this are "small": a studio image made from them is often mostly one picture
SMALL_LIBRARY = 50
REMOVED = "a picture since removed from the library"


def pct(value: float) -> str:
    """A fraction as a whole percentage (``under 1 %`` for tiny non-zero values)."""
    return f"{value * 100:.0f} %" if value >= 0.01 or value == 0 else "under 1 %"


#: the originality score in words: (lowest score, words), highest band first
ORIGINALITY_BANDS = ((90, "very original"), (70, "original"), (40, "partly borrowed"), (1, "mostly borrowed"),
                     (0, "not original"))


@dataclass(frozen=True)
class Words:
    """A copy verdict in the words shown everywhere (pages, campaign cards, contact sheet, CSV, command line).

    ``risk``: "Low copy risk (largest copied piece: 3 % of the image)"; ``originality``: "Originality 97 / 100
    — very original"; ``reason``: the figure that decided, in a sentence ("" when not known). Plain text: escape
    it where it is shown.
    """

    risk: str
    originality: str
    reason: str = ""
    level: str | None = None  # "low" | "medium" | "high" (None when not known)
    figure: str = ""  # the part of ``risk`` in brackets: the figure that decided it, in words
    band: str = ""  # the part of ``originality`` after the dash: "very original"

    @property
    def line(self) -> str:
        """Both in one line: "Low copy risk (…) · Originality 97 / 100 — very original"."""
        return " · ".join(part for part in (self.risk, self.originality) if part)


def originality_value(score: float | int | None) -> int | None:
    """An originality score as a whole number 0–100 (None when there is none). Scores between 0 and 1 are
    fractions (figures kept before the 0–100 scale)."""
    if score is None or isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
        return None
    value = float(score) * 100 if 0 < score < 1 else float(score)
    return int(round(min(100.0, max(0.0, value))))


def originality_words(score: float | int | None) -> str:
    """"Originality 97 / 100 — very original" ("" when there is no score). Scores of 1 or less that are not
    whole numbers are taken as fractions (figures kept before the 0–100 scale)."""
    value = originality_value(score)
    if value is None:
        return ""
    words = next(text for lowest, text in ORIGINALITY_BANDS if value >= lowest)
    return f"Originality {value} / 100 — {words}"


def _risk_figure(verdict: Verdict | None, value: float | None = None) -> str:
    """The figure behind a copy risk, as a person reads it (inside the brackets of :func:`in_words`)."""
    if verdict is not None:
        if verdict.driver == "near_copy":
            if verdict.near_copy_match is not None:
                return f"a near copy: the whole image matches one library picture at {pct(verdict.near_copy_match)}"
            return f"a near copy: one piece covers {pct(verdict.largest_region)} of the image"
        if verdict.driver == "region":
            return f"one copied piece covers {pct(verdict.largest_region)} of the image"
        if verdict.driver == "source":
            return f"one library picture supplies {pct(verdict.top_share)} of the image"
        if verdict.source_count == 0 or (verdict.basis == "search" and verdict.borrowed == 0):
            return "nothing found in the library"
        return f"largest copied piece: {pct(verdict.largest_region)} of the image"
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return ""
    return f"{round(min(1.0, max(0.0, float(value))) * 100)} of 100"


def in_words(
    verdict: Verdict | None = None,
    *,
    originality: float | int | None = None,
    risk: str | None = None,
    value: float | None = None,
) -> Words:
    """THE copy verdict in words, for every place that shows one.

    Give a :class:`Verdict`, or (for figures kept without one, e.g. campaign images checked before verdicts
    existed) the ``originality`` score (0–100), the ``risk`` level (low, medium, high, or another label) and
    ``value``, the figure (a fraction) that decided it. Nothing known gives "Not checked yet".
    """
    if verdict is not None:
        figure = _risk_figure(verdict)
        reason = verdict.headline if verdict.driver != "none" else ""
        originality = originality_words(verdict.originality)
        return Words(
            risk=f"{verdict.label} ({figure})",
            originality=originality,
            reason=reason,
            level=verdict.risk,
            figure=figure,
            band=originality.partition(" — ")[2],
        )
    label = RISK_LABELS.get(str(risk).lower(), str(risk).strip().capitalize() if risk else "")
    figure = _risk_figure(None, value)
    if label and "risk" not in label.lower() and label not in RISK_LABELS.values():
        label = f"Copy risk: {label}"
    if not label and figure:
        label = "Copy risk"
    text = f"{label} ({figure})" if label and figure else label
    words = originality_words(originality)
    if not text and not words:
        return Words(risk="Not checked yet", originality="")
    level = str(risk).lower() if str(risk).lower() in RISKS else None
    return Words(risk=text, originality=words, level=level, figure=figure if label else "",
                 band=words.partition(" — ")[2])


@dataclass(frozen=True)
class Verdict:
    """How original an image is, why, and how sure (which basis)."""

    basis: str  # "exact" (recorded by the studio while making the image) or "search" (library search)
    originality: int  # 0..100
    risk: str  # "low" | "medium" | "high"
    driver: str  # the figure that decided the risk: "near_copy", "region", "source" or "none"
    borrowed: float  # fraction of the image in pieces (of at least MIN_PIECE) taken from library pictures
    top_share: float  # fraction of the image supplied by the largest source picture
    top_source: str | None  # its name
    largest_region: float  # the largest piece taken from one picture (exact: at one offset), fraction
    region_source: str | None  # the picture of that piece
    source_count: int  # library pictures the image takes pixels from
    near_copy: bool = False
    near_copy_source: str | None = None
    near_copy_match: float | None = None  # whole-image match (search), when it is what makes the near copy
    mirrored: bool = False
    library_size: int | None = None
    small_library: bool = False
    region_scale: float = 1.0  # how big the largest piece appears here relative to its library picture

    @property
    def resized(self) -> str:
        """" (shown at half its size in the library)" and the like, or "" when about the same size."""
        k = self.region_scale
        if not isinstance(k, int | float) or isinstance(k, bool) or k <= 0 or 0.85 <= k <= 1.18:
            return ""
        if k > 1:
            return f" (blown up {k:.1f}× from the library picture)".replace(".0×", "×")
        return f" (shrunk to {k * 100:.0f} % of its size in the library picture)"

    # ------------------------------------------------------------------------- words
    @property
    def label(self) -> str:
        return RISK_LABELS[self.risk]

    @property
    def advice(self) -> str:
        return RISK_ADVICE[self.risk]

    @property
    def headline_value(self) -> float:
        """The figure (a fraction) that decided the label."""
        if self.driver == "near_copy":
            return self.near_copy_match if self.near_copy_match is not None else self.largest_region
        if self.driver == "source":
            return self.top_share
        return self.largest_region

    @property
    def headline(self) -> str:
        """The figure that decided the label, in words (no Markdown: escape it where it is shown)."""
        if self.driver == "near_copy":
            source = self.near_copy_source or self.region_source or "one library picture"
            if self.near_copy_match is not None:
                flipped = " (mirrored)" if self.mirrored else ""
                return f"a near copy{flipped} of “{source}”: the whole image matches it ({pct(self.near_copy_match)})"
            return f"a near copy: one piece from “{source}” covers {pct(self.largest_region)} of the image"
        if self.driver == "region":
            return f"one piece from “{self.region_source}”{self.resized} covers {pct(self.largest_region)} of the image"
        if self.driver == "source":
            return f"“{self.top_source}” supplies {pct(self.top_share)} of the image"
        if self.source_count == 0 or (self.basis == "search" and self.borrowed == 0):
            return "no part of it was found in the library"
        return f"only small pieces: the largest covers {pct(self.largest_region)} of the image"

    @property
    def summary(self) -> str:
        """One or two plain sentences (no Markdown: escape it where it is shown)."""
        risk = self.label.lower()
        pictures = "1 library picture" if self.source_count == 1 else f"{self.source_count} library pictures"
        if self.driver == "near_copy":
            return f"This image is {self.headline} — {risk}."
        if self.driver == "region":
            if self.basis == "exact":
                rest = f"In all, “{self.top_source}” supplies {pct(self.top_share)} of it ({pictures} used)."
            else:
                rest = f"In all, {pct(self.borrowed)} of it was found in {pictures}."
            return (
                f"One piece copied from “{self.region_source}”{self.resized} covers {pct(self.largest_region)} of this "
                f"image — "
                f"{risk}. {rest}"
            )
        if self.driver == "source":
            return (
                f"“{self.top_source}” supplies {pct(self.top_share)} of this image, in pieces (the largest covers "
                f"{pct(self.largest_region)}) — {risk}."
            )
        if self.headline.startswith("no part"):
            return f"No part of this image was found in the library — {risk}."
        if self.basis == "exact":
            return (
                f"Assembled from {pictures} in pieces too small to recognise (the largest covers "
                f"{pct(self.largest_region)}; the largest source supplies {pct(self.top_share)}) — {risk}."
            )
        return (
            f"{pct(self.borrowed)} of this image was found in {pictures}, in small pieces (the largest covers "
            f"{pct(self.largest_region)}) — {risk}."
        )

    @property
    def basis_line(self) -> str:
        if self.basis == "exact":
            return "Based on the exact sources the studio recorded while making this image."
        return "Based on pieces of this image found by searching the library."

    @property
    def library_advice(self) -> str:
        """Plain advice when the library is too small for original images ("" otherwise)."""
        if not self.small_library:
            return ""
        size = f"only {self.library_size} pictures" if self.library_size is not None else "few pictures"
        return (
            f"The library has {size}: too few for the studio to make original images — here one picture "
            f"supplies {pct(self.top_share)} of the image. Use a bigger library (a few hundred pictures or more) "
            "for images that do not copy one picture."
        )

    @property
    def words(self) -> Words:
        """This verdict in the words shown everywhere (see :func:`in_words`)."""
        return in_words(self)

    @property
    def card_text(self) -> str:
        """One line for campaign cards and the contact sheet (no Markdown: escape it where it is shown)."""
        return f"Originality {self.originality}/100 · {self.label}: {self.headline}"

    # ------------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["label"] = self.label
        data["headline"] = self.headline
        data["summary"] = self.summary
        data["in_words"] = self.words.line
        return data

    @classmethod
    def from_json(cls, data: Any) -> Verdict:
        """A verdict saved with :meth:`to_json`; :class:`ValueError` when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("a verdict must be a mapping")
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        verdict = cls(**values)
        if verdict.basis not in BASES or verdict.risk not in RISKS:
            raise ValueError(f"unknown basis or risk: {verdict.basis!r}, {verdict.risk!r}")
        if verdict.driver not in ("near_copy", "region", "source", "none"):
            raise ValueError(f"unknown driver {verdict.driver!r}")
        for name in ("borrowed", "top_share", "largest_region"):
            value = getattr(verdict, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name}: {value!r} is not a fraction")
        if not isinstance(verdict.originality, int) or not 0 <= verdict.originality <= 100:
            raise ValueError(f"originality {verdict.originality!r}")
        return verdict


# ----------------------------------------------------------------------------- the rule


def _decide(borrowed: float, top_share: float, largest: float, near_copy: bool) -> tuple[str, int, str]:
    return (
        copy_risk(largest, top_share, near_copy),
        originality_score(borrowed, largest, near_copy),
        risk_driver(largest, top_share, near_copy),
    )


def verdict_from_search(
    borrowed: float,
    shares: list[SourceShare],
    largest: float,
    largest_source: SourceShare | None,
    near: NearCopy,
    library_size: int | None = None,
) -> Verdict:
    """The verdict of a library search (the analyzer's figures)."""
    top = shares[0] if shares else None
    top_share = top.share if top is not None else 0.0
    risk, originality, driver = _decide(borrowed, top_share, largest, near.is_copy)
    by_region = near.is_copy and largest >= NEAR_COPY_REGION and largest_source is not None
    return Verdict(
        basis="search",
        originality=originality,
        risk=risk,
        driver=driver,
        borrowed=float(borrowed),
        top_share=float(top_share),
        top_source=top.name if top is not None else None,
        largest_region=float(largest),
        region_source=largest_source.name if largest_source is not None else None,
        source_count=len(shares),
        near_copy=bool(near.is_copy),
        near_copy_source=(largest_source.name if by_region else near.name) if near.is_copy else None,
        near_copy_match=None if not near.is_copy or by_region else float(near.score),
        mirrored=bool(near.mirrored) if near.is_copy and not by_region else False,
        library_size=library_size,
        small_library=False,
        region_scale=float(largest_source.regions[0].scale) if largest_source is not None and largest_source.regions
        else 1.0,
    )


def verdict_from_analysis(result: AnalysisResult, library_size: int | None = None) -> Verdict:
    """The search verdict of an analysis (whatever verdict was attached to it)."""
    return verdict_from_search(
        result.borrowed_fraction,
        result.sources,
        result.largest_region_fraction,
        result.largest_region_source,
        result.near_copy,
        library_size,
    )


def final_verdict(result: AnalysisResult) -> Verdict:
    """The verdict to show for ``result``: the one attached to it (exact sources), else its search verdict."""
    return result.verdict if result.verdict is not None else verdict_from_analysis(result)


def attach(result: AnalysisResult, verdict: Verdict) -> AnalysisResult:
    """Make ``verdict`` the result's verdict: its originality, copy risk and summary follow it."""
    result.verdict = verdict
    result.originality = verdict.originality
    result.copy_risk = verdict.risk
    result.summary = verdict.summary
    return result


# ----------------------------------------------------------------------------- exact sources


def one_offset_pieces(sources: np.ndarray, jitter: int = OFFSET_JITTER) -> np.ndarray:
    """Label each pixel with its piece: connected (4-neighbour) pixels from one library picture at one offset.

    ``sources`` is ``(H, W, 3)``: library index, then the (y, x) the pixel came from in that picture. The
    offset of a pixel is its source (y, x) minus its own (y, x). Neighbours join when they name the same
    picture and their offsets differ by at most ``jitter`` pixels in y and in x (the studio often copies a
    picture with such tiny shifts; over a large piece the shift can add up slowly, like a slightly warped
    copy). Returns an ``(H, W)`` array of piece numbers.
    """
    sources = np.asarray(sources).astype(np.int64)
    height, width = sources.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    offset = np.stack([sources[..., 1] - ys, sources[..., 2] - xs], axis=-1)
    picture = sources[..., 0]
    ids = np.arange(height * width).reshape(height, width)
    rows, cols = [], []
    for a, b in (
        (np.s_[:, :-1], np.s_[:, 1:]),  # left-right neighbours
        (np.s_[:-1, :], np.s_[1:, :]),  # up-down neighbours
    ):
        joined = (picture[a] == picture[b]) & (np.abs(offset[a] - offset[b]).max(axis=-1) <= jitter)
        rows.append(ids[a][joined])
        cols.append(ids[b][joined])
    row, col = np.concatenate(rows), np.concatenate(cols)
    from scipy.sparse import coo_matrix  # here: loading scipy takes a third of a second of every command
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(row.size, dtype=np.int8), (row, col)), shape=(height * width, height * width))
    _, labels = connected_components(graph, directed=False)
    return labels.reshape(height, width)


def verdict_from_exact(
    sources: np.ndarray,
    names: dict[int, str],
    library_size: int | None,
    near_copy_region: float = NEAR_COPY_REGION,
) -> Verdict:
    """The verdict of a studio image from its exact per-pixel sources.

    ``sources``: ``(H, W, 3)`` (library index in the current load order, -1 for a picture removed since;
    source y; source x), as :attr:`core.mosaic.Mosaic.sources`. ``names``: library index -> readable name.
    ``library_size``: pictures in the library (for the small-library advice), None when unknown.
    """
    sources = np.asarray(sources)
    if sources.ndim != 3 or sources.shape[-1] != 3 or sources.size == 0:
        raise ValueError(f"exact sources must be an (H, W, 3) array, got {sources.shape}")
    total = sources.shape[0] * sources.shape[1]
    picture = sources[..., 0].astype(np.int64)

    def name(index: int) -> str:
        return REMOVED if index < 0 else names.get(index, f"library picture #{index}")

    ids, counts = np.unique(picture, return_counts=True)
    top = int(np.argmax(counts))  # ties: the lowest index, as core.mosaic.top_sources (a stable sort)
    top_share = float(counts[top]) / total
    labels = one_offset_pieces(sources)
    piece_sizes = np.bincount(labels.ravel())
    largest_piece = int(np.argmax(piece_sizes))
    largest = float(piece_sizes[largest_piece]) / total
    region_index = int(picture.ravel()[np.flatnonzero(labels.ravel() == largest_piece)[0]])
    min_pixels = max(1, math.ceil(MIN_PIECE * total))
    borrowed = float((piece_sizes[labels] >= min_pixels).mean())
    near_copy = largest >= near_copy_region
    risk, originality, driver = _decide(borrowed, top_share, largest, near_copy)
    small = library_size is not None and library_size < SMALL_LIBRARY and risk != "low"
    verdict = Verdict(
        basis="exact",
        originality=originality,
        risk=risk,
        driver=driver,
        borrowed=borrowed,
        top_share=top_share,
        top_source=name(int(ids[top])),
        largest_region=largest,
        region_source=name(region_index),
        source_count=int(ids.size),
        near_copy=near_copy,
        near_copy_source=name(region_index) if near_copy else None,
        library_size=library_size,
        small_library=small,
    )
    logger.debug("exact verdict: %s", verdict.summary)
    return verdict


# ----------------------------------------------------------------------------- studio images

#: the engine whose images carry exact per-pixel sources
STUDIO_ENGINE = "local-score"


def mosaic_verdict(mosaic: Any, libraries: Any) -> Verdict:
    """The exact verdict of a :class:`core.mosaic.Mosaic` (its library as it is now)."""
    return verdict_from_exact(mosaic.sources, mosaic.names, len(libraries.items(mosaic.library)))


def studio_verdict(record: Any, store: Any, libraries: Any, library: str | None = None) -> Verdict | None:
    """The exact verdict of a saved studio (local score) image, when its sources were saved and ``library``
    (when given) is the image's own library; None otherwise (then the search verdict applies)."""
    from core.errors import MosaicError

    if record is None or getattr(record, "engine", None) != STUDIO_ENGINE:
        return None
    if library is not None and library != record.library:
        return None
    try:
        arrays = store.arrays(record)
        if "sources" not in arrays:
            return None
        from core.mosaic import build_mosaic

        return mosaic_verdict(build_mosaic(arrays, record.library, libraries), libraries)
    except (MosaicError, OSError, KeyError, ValueError) as err:
        logger.info("exact sources of %s not usable: %s", getattr(record, "id", "?"), err)
        return None
