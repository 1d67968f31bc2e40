"""The patch mosaic of a local score image: which library patch every pixel came from.

Reads the side arrays the local score engine saves with each image (per-pixel sources at every
step) and turns them into what the Mosaic view shows: a source map coloured by library image,
the top source images with their borrowed patches boxed, and the mosaic at each step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw

from core.html import escape
from core.images import from_tensor
from core.libraries import LibraryManager

logger = logging.getLogger(__name__)

# 24 distinct, readable colours (plotly's Dark24 + Light24 mixes, hand-picked).
PALETTE = [
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B",
    "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16",
    "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#D9D9D9",
]  # fmt: skip
#: colour slot of every source outside the top ``len(PALETTE) - 1`` (light grey)
OTHER = len(PALETTE) - 1


@dataclass
class SourceShare:
    """One library image and how much of the output it supplied."""

    index: int  # position in the library's current load order (-1 if the item was removed)
    item_id: str
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
    names: dict[int, str]  # library index -> readable name

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

    names = {}
    for i, item in enumerate(items):
        label = item.get("label")
        source = item.get("source") or item.get("file") or item["id"]
        names[i] = f"{source}" + (f" [{label}]" if label else "")
    return Mosaic(
        library=library,
        size=int(arrays["sources"].shape[0]),
        sources=remap(arrays["sources"]),
        step_sources=remap(arrays["step_sources"]),
        entropy=arrays["entropy"].astype(np.float32),
        step_x0=arrays["step_x0"].astype(np.float32),
        patch_sizes=[int(p) for p in arrays["patch_sizes"]],
        names=names,
    )


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
                item_id=mosaic.names.get(index, "removed from library"),
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
            index, sy, sx = (int(v) for v in src[y, x])
            name = mosaic.names.get(index, "removed from library")
            text[y, x] = (
                f"pixel ({y}, {x})<br>from library image #{index}: {escape(name)}<br>patch centre ({sy}, {sx})"
            )
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
