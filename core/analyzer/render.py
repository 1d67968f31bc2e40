"""Pictures of an analysis (PIL only; the UI decides how to show them)."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image, ImageDraw

from core.analyzer.result import AnalysisResult, SourceShare
from core.images import to_tensor
from core.libraries import LibraryManager

logger = logging.getLogger(__name__)

_NOT_BORROWED = (224, 224, 224)
# a perceptually ordered ramp (dark blue -> teal -> yellow), like viridis
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float32)


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _pick(result: AnalysisResult, scale: int | None):
    if scale is None:
        return result.source_map, result.source_yx, result.similarity, result.sources
    chosen = result.scales[scale]
    return chosen.source_map, chosen.source_yx, chosen.similarity, chosen.sources


def _enlarge(image: Image.Image, upscale: int) -> Image.Image:
    if upscale <= 1:
        return image
    return image.resize((image.width * upscale, image.height * upscale), Image.Resampling.NEAREST)


def source_map_image(result: AnalysisResult, scale: int | None = None, upscale: int = 4) -> Image.Image:
    """Each pixel coloured by its library image (colours as in ``result.sources``); grey = original."""
    source_map, _, _, sources = _pick(result, scale)
    rgb = np.empty(source_map.shape + (3,), dtype=np.uint8)
    rgb[:] = _NOT_BORROWED
    for share in sources:
        rgb[source_map == share.index] = _hex(share.colour)
    return _enlarge(Image.fromarray(rgb, "RGB"), upscale)


def similarity_heatmap(result: AnalysisResult, scale: int | None = None, upscale: int = 4) -> Image.Image:
    """Similarity to the best library patch: dark = unlike anything in the library, yellow = identical."""
    _, _, similarity, _ = _pick(result, scale)
    value = np.clip(similarity, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(value).astype(int).clip(0, len(_RAMP) - 2)
    t = (value - low)[..., None]
    rgb = (_RAMP[low] * (1 - t) + _RAMP[low + 1] * t).round().astype(np.uint8)
    return _enlarge(Image.fromarray(rgb, "RGB"), upscale)


def _library_pixels(result: AnalysisResult, libraries: LibraryManager) -> np.ndarray:
    channels = 1 if result.analysed_image is not None and result.analysed_image.mode == "L" else 3
    batch = libraries.load(result.library, result.work_size, channels)
    return ((batch.images.numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def rebuilt_image(
    result: AnalysisResult, libraries: LibraryManager | None = None, scale: int | None = None, upscale: int = 2
) -> Image.Image:
    """The image rebuilt from library pixels; parts not borrowed show the original, faded."""
    libraries = libraries or LibraryManager()
    source_map, source_yx, _, _ = _pick(result, scale)
    pixels = _library_pixels(result, libraries)  # (N, C, S, S)
    original = to_tensor(result.analysed_image).numpy()
    out = ((original + 1.0) * 127.5).transpose(1, 2, 0)
    out = out * 0.35 + 255 * 0.65  # faded
    borrowed = source_map >= 0
    if borrowed.any():
        size = pixels.shape[-1]
        ys = source_yx[..., 0].clip(0, size - 1)
        xs = source_yx[..., 1].clip(0, size - 1)
        idx = source_map.clip(0, pixels.shape[0] - 1)
        taken = pixels[idx, :, ys, xs]  # (H, W, C)
        out[borrowed] = taken[borrowed]
    array = out.round().clip(0, 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    return _enlarge(image.convert("RGB"), upscale)


def top_source_images(
    result: AnalysisResult,
    libraries: LibraryManager | None = None,
    k: int = 6,
    scale: int | None = None,
    upscale: int = 2,
) -> list[tuple[SourceShare, Image.Image]]:
    """The ``k`` library images that supplied the most, each with its borrowed regions boxed."""
    libraries = libraries or LibraryManager()
    _, _, _, sources = _pick(result, scale)
    if not sources:
        return []
    pixels = _library_pixels(result, libraries)
    out = []
    for share in sources[:k]:
        array = pixels[share.index].transpose(1, 2, 0)
        image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).convert("RGB")
        image = _enlarge(image, upscale)
        draw = ImageDraw.Draw(image)
        for region in share.regions:
            top, left, bottom, right = region.source_box
            draw.rectangle(
                (left * upscale, top * upscale, right * upscale - 1, bottom * upscale - 1),
                outline=share.colour,
                width=max(1, upscale),
            )
        out.append((share, image))
    return out
