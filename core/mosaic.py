"""The patch mosaic of a local score image: which library patch every pixel came from.

Reads the side arrays the local score engine saves with each image (per-pixel sources at every
step) and turns them into what the Mosaic view shows: a source map coloured by library image,
the top source images with their borrowed patches boxed, the mosaic at each step, and the step that
explains the image best (:func:`clearest_step`). Library pictures are named by
:func:`core.libraries.names.source_names`, as everywhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw

from core.analyzer.verdict import pct
from core.html import escape
from core.images import from_tensor
from core.libraries import LibraryManager
from core.libraries.names import position_words, source_names
from core.words import plural

logger = logging.getLogger(__name__)

# 24 distinct, readable colours (plotly's Dark24 + Light24 mixes, hand-picked).
PALETTE = [
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B",
    "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16",
    "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#D9D9D9",
]  # fmt: skip
#: colour slot of every source outside the top ``len(PALETTE) - 1`` (light grey)
OTHER = len(PALETTE) - 1
#: how a library picture removed since the image was made is named
REMOVED = "a picture since removed from the library"
#: the clearest step is read from this many largest sources ("mostly made of 4 library pictures")
FEW = 4


@dataclass
class SourceShare:
    """One library image and how much of the output it supplied."""

    index: int  # position in the library's current load order (-1 if the item was removed)
    item_id: str  # the library item's id ("" if it was removed)
    name: str  # the name people see (core.libraries.names.source_name)
    share: float  # fraction of output pixels
    locations: list[tuple[int, int]]  # patch centres (y, x) in the library image
    colour: str


@dataclass
class Mosaic:
    """Sources of one generated image, mapped to the library as it is now."""

    library: str
    size: int
    sources: np.ndarray  # (H, W, 3): current library index (-1 if removed), y, x
    step_sources: np.ndarray  # (S, H, W, 3)
    entropy: np.ndarray  # (H, W)
    step_x0: np.ndarray  # (S, C, H, W) in [-1, 1]
    patch_sizes: list[int]
    names: dict[int, str]  # library index -> the name people see (core.libraries.names.source_names)
    item_ids: list[str] = field(default_factory=list)  # library index -> item id

    @property
    def steps(self) -> int:
        return int(self.step_sources.shape[0])


def fast_draft_caption(params: dict) -> str:
    """How an approximate ("fast draft") image was made, in plain words, from its parameters."""
    if params.get("approximate_method") == "patch index":
        return "fast draft (after the first steps each pixel looked only at the closest groups of library patches)"
    return f"fast draft ({params.get('top_k')} library pictures per image after the first steps)"


def build_mosaic(arrays: dict[str, np.ndarray], library: str, libraries: LibraryManager) -> Mosaic:
    """Map saved source arrays (which name library items by id) onto the library's current order."""
    items = libraries.items(library)
    position = {item["id"]: i for i, item in enumerate(items)}
    old_to_new = {
        int(old): position.get(str(item_id), -1)
        for old, item_id in zip(arrays["used_indices"], arrays["used_item_ids"], strict=True)
    }

    def remap(src: np.ndarray) -> np.ndarray:
        out = src.astype(np.int64).copy()
        out[..., 0] = np.vectorize(lambda v: old_to_new.get(int(v), -1), otypes=[np.int64])(src[..., 0])
        return out

    return Mosaic(
        library=library,
        size=int(arrays["sources"].shape[0]),
        sources=remap(arrays["sources"]),
        step_sources=remap(arrays["step_sources"]),
        entropy=arrays["entropy"].astype(np.float32),
        step_x0=arrays["step_x0"].astype(np.float32),
        patch_sizes=[int(p) for p in arrays["patch_sizes"]],
        names=source_names(items, library),
        item_ids=[str(item["id"]) for item in items],
    )


def source_label(mosaic: Mosaic, index: int) -> str:
    """The name shown for library picture ``index`` of ``mosaic`` (a removed picture says so)."""
    return REMOVED if index < 0 else mosaic.names.get(index, REMOVED)


def top_sources(mosaic: Mosaic, k: int = 6, step: int | None = None) -> list[SourceShare]:
    """The ``k`` library images that supplied the most pixels (at the end, or at ``step``)."""
    src = mosaic.sources if step is None else mosaic.step_sources[step]
    ids, counts = np.unique(src[..., 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:k]
    total = src.shape[0] * src.shape[1]
    shares = []
    for rank, j in enumerate(order):
        index = int(ids[j])
        mask = src[..., 0] == index
        locations = sorted({(int(y), int(x)) for y, x in zip(src[..., 1][mask], src[..., 2][mask], strict=True)})
        shares.append(
            SourceShare(
                index=index,
                item_id=mosaic.item_ids[index] if 0 <= index < len(mosaic.item_ids) else "",
                name=source_label(mosaic, index),
                share=float(counts[j]) / total,
                locations=locations,
                colour=PALETTE[min(rank, OTHER)],
            )
        )
    return shares


def colour_indices(src: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Colour slot per pixel: sources ranked by area, the top ones get their own colour."""
    ids, inverse, counts = np.unique(src[..., 0], return_inverse=True, return_counts=True)
    rank = np.empty_like(counts)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    return rank[inverse].reshape(src.shape[:2]) % len(PALETTE), [
        int(i) for i in ids[np.argsort(-counts, kind="stable")]
    ]


def source_map_figure(mosaic: Mosaic, step: int | None = None, height: int = 420) -> go.Figure:
    """Interactive source map: each pixel coloured by its library image; hover names it."""
    src = mosaic.sources if step is None else mosaic.step_sources[step]
    slots, _ = colour_indices(src)
    h, w = slots.shape
    text = np.empty((h, w), dtype=object)
    for y in range(h):
        for x in range(w):
            text[y, x] = hover_text(mosaic, src[y, x])
    n = len(PALETTE)
    colorscale = []
    for i, colour in enumerate(PALETTE):
        colorscale += [[i / n, colour], [(i + 1) / n, colour]]
    figure = go.Figure(
        go.Heatmap(
            z=slots,
            zmin=0,
            zmax=n,
            colorscale=colorscale,
            showscale=False,
            text=text,
            hovertemplate="%{text}<extra></extra>",
            xgap=0.5,
            ygap=0.5,
        )
    )
    figure.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False)
    figure.update_xaxes(showticklabels=False, showgrid=False)
    figure.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), plot_bgcolor="white")
    return figure


def hover_text(mosaic: Mosaic, source: np.ndarray) -> str:
    """What hovering a pixel of the source map says: the picture it came from and where in that picture.

    Plotly reads hover text as HTML: the picture's name is escaped; the two line breaks are the studio's own.
    """
    index, sy, sx = (int(v) for v in source)
    if index < 0:
        return f"This spot comes from<br>{REMOVED}"
    where = position_words(sy, sx, mosaic.size, mosaic.size)
    return f"This spot comes from<br><b>{escape(source_label(mosaic, index))}</b><br>its {where} part"


def mosaic_image(mosaic: Mosaic, library_images: np.ndarray, step: int | None = None) -> Image.Image:
    """The picture rebuilt from source centre pixels (``library_images``: (N, C, H, W) in [-1, 1])."""
    src = mosaic.sources if step is None else mosaic.step_sources[step]
    index = src[..., 0].clip(0, None)
    pixels = library_images[index, :, src[..., 1], src[..., 2]]  # (H, W, C)
    pixels[src[..., 0] < 0] = 0.0
    return from_tensor(torch.from_numpy(np.ascontiguousarray(np.moveaxis(pixels, -1, 0))))


def prediction_image(mosaic: Mosaic, step: int) -> Image.Image:
    """The machine's predicted clean image at ``step``."""
    return from_tensor(torch.from_numpy(mosaic.step_x0[step]).clamp(-1, 1))


def boxed_source(
    image: Image.Image, locations: list[tuple[int, int]], patch: int, colour: str, scale: int = 8
) -> Image.Image:
    """A library image enlarged, with the borrowed patches outlined."""
    big = image.convert("RGB").resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(big)
    r = patch // 2
    for y, x in locations:
        box = ((x - r) * scale, (y - r) * scale, (x + r + 1) * scale - 1, (y + r + 1) * scale - 1)
        draw.rectangle(box, outline=colour, width=max(1, scale // 4))
    return big


def source_colour_image(mosaic: Mosaic, step: int | None = None, scale: int = 8) -> Image.Image:
    """The source map as a static picture (for exports and the gallery)."""
    src = mosaic.sources if step is None else mosaic.step_sources[step]
    slots, _ = colour_indices(src)
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in PALETTE], dtype=np.uint8)[slots]
    image = Image.fromarray(rgb, "RGB")
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


# ----------------------------------------------------------------------------- the clearest step


@dataclass
class StepReading:
    """How easy one step of the mosaic is to read, and how much it already looks like the finished image."""

    step: int  # 0-based
    sources: int  # distinct library pictures used at this step
    few_share: float  # fraction of the pixels supplied by the FEW largest sources
    likeness: float  # 0..1: how closely the step's prediction follows the finished image (correlation, >= 0)

    @property
    def score(self) -> float:
        """Readable and already like the finished image: ``few_share × likeness`` (the clearest step has the most)."""
        return self.few_share * self.likeness


def _likeness(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two pictures' pixels, clipped to 0..1 (flat pictures: 1 if equal, else 0)."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if a.std() < 1e-6 or b.std() < 1e-6:
        return 1.0 if np.allclose(a, b, atol=1e-3) else 0.0
    return float(np.clip(np.corrcoef(a, b)[0, 1], 0.0, 1.0))


def step_readings(mosaic: Mosaic) -> list[StepReading]:
    """A :class:`StepReading` for every step, first to last."""
    final = mosaic.step_x0[-1]
    readings = []
    for step in range(mosaic.steps):
        _, counts = np.unique(mosaic.step_sources[step][..., 0], return_counts=True)
        few = np.sort(counts)[::-1][:FEW].sum() / counts.sum()
        readings.append(
            StepReading(
                step=step,
                sources=int(counts.size),
                few_share=float(few),
                likeness=_likeness(mosaic.step_x0[step], final),
            )
        )
    return readings


def clearest_step(mosaic: Mosaic, readings: list[StepReading] | None = None) -> int:
    """The step (0-based) that explains the image best: the Mosaic view opens there.

    Early steps are made of a few large pieces but look little like the finished image; the last steps
    look like it but mix many small pieces (at the last step of a faces image the largest sources supply
    2 % each: confetti). The clearest step has the highest :attr:`StepReading.score`, the share of the
    image its :data:`FEW` largest sources supply times how much it already looks like the finished image;
    of equal scores the later step. ``readings``: :func:`step_readings` of ``mosaic`` where already made.
    """
    readings = readings or step_readings(mosaic)
    best = readings[-1]
    for reading in reversed(readings):
        if reading.score > best.score + 1e-9:
            best = reading
    return best.step


def clearest_step_reason(mosaic: Mosaic, step: int, readings: list[StepReading] | None = None) -> str:
    """Why the Mosaic view opened at ``step`` (0-based), in one plain sentence (Markdown)."""
    readings = readings or step_readings(mosaic)
    chosen, last = readings[step], readings[-1]
    few = min(FEW, chosen.sources)
    pictures = plural(few, "library picture")
    if step == mosaic.steps - 1:
        return (
            f"The final step is the easiest to read: **{pct(chosen.few_share)}** of the image comes from "
            f"{pictures}; earlier steps are rougher sketches of it."
        )
    if chosen.few_share >= 0.5:
        made = f"the image is mostly made of {pictures} (**{pct(chosen.few_share)}** of it)"
    else:
        made = f"{pictures} supply **{pct(chosen.few_share)}** of the image"
    return (
        f"Step {step + 1} of {mosaic.steps} is the clearest: here {made}, and it already looks "
        f"{_like(chosen.likeness)} the finished image. Later steps mix many small pieces: at the final step the "
        f"{few} largest sources supply only **{pct(last.few_share)}**."
    )


def _like(likeness: float) -> str:
    if likeness >= 0.8:
        return "much like"
    if likeness >= 0.5:
        return "like"
    return "a little like"
