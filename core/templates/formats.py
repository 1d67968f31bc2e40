"""Channel formats (square post, story, banner...) and the pixel sizes each model family renders them at.

Diffusion models make their best images near the resolution they were trained at: about 512×512
pixels for Stable Diffusion 1.x and 1024×1024 for SDXL. A channel format is therefore rendered at
an aspect-matched size of about that many pixels, in multiples of 64 (every SD VAE/UNet accepts
them), and scaled to the delivery size (``delivery``) later, outside the model.

The local score engine makes square images only (16–64 px); see :func:`local_score_size`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import BadInputError

#: Model families and their base (training) resolution.
#: Keys match ``core.engines.sd.FAMILIES``.
FAMILY_BASE: dict[str, int] = {"sd1": 512, "sd2": 768, "sdxl": 1024, "sd-turbo": 512, "sdxl-turbo": 512}
FAMILY_LABELS: dict[str, str] = {
    "sd1": "Stable Diffusion 1.x (512 px)",
    "sd2": "Stable Diffusion 2.x (768 px)",
    "sdxl": "Stable Diffusion XL (1024 px)",
    "sd-turbo": "SD Turbo (512 px)",
    "sdxl-turbo": "SDXL Turbo (512 px)",
}
#: Families distilled for 1-4 steps without guidance: no guidance sweep.
TURBO_FAMILIES = ("sd-turbo", "sdxl-turbo")
#: Every width and height is a multiple of this.
SIZE_MULTIPLE = 64


@dataclass(frozen=True)
class ChannelFormat:
    """A place an image is published: its aspect ratio and the size platforms expect."""

    key: str
    label: str
    ratio_w: int
    ratio_h: int
    #: pixel size platforms expect for delivery (the model renders smaller; upscale or crop later)
    delivery: tuple[int, int]

    @property
    def ratio(self) -> float:
        return self.ratio_w / self.ratio_h

    @property
    def aspect(self) -> str:
        return f"{_num(self.ratio_w)}:{_num(self.ratio_h)}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


CHANNELS: dict[str, ChannelFormat] = {
    "square": ChannelFormat("square", "Square post (1:1)", 1, 1, (1080, 1080)),
    "feed": ChannelFormat("feed", "Portrait feed post (4:5)", 4, 5, (1080, 1350)),
    "story": ChannelFormat("story", "Story / reel (9:16)", 9, 16, (1080, 1920)),
    "banner": ChannelFormat("banner", "Link banner (1.91:1)", 191, 100, (1200, 628)),
    "hero": ChannelFormat("hero", "Website hero (16:9)", 16, 9, (1920, 1080)),
}

#: Hand-picked sizes (width, height) per family: aspect-true within a few percent, about base² pixels.
_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "sd1": {
        "square": (512, 512),
        "feed": (512, 640),
        "story": (448, 768),
        "banner": (768, 384),
        "hero": (704, 384),
    },
    "sdxl": {
        "square": (1024, 1024),
        "feed": (896, 1152),
        "story": (768, 1344),
        "banner": (1344, 704),
        "hero": (1344, 768),
    },
}


def model_family(model: str | None, family: str | None = None) -> str:
    """The model family of a model id or path, guessed from its name; ``family`` wins when given.

    ``xl`` in the name means SDXL, ``turbo`` a Turbo model, ``stable-diffusion-2``/``sd2``/``v2-`` SD 2.x;
    anything else counts as SD 1.x. (The SD engine knows for sure once a model is loaded:
    pass ``family=StableDiffusionEngine().family_of(model).key``.)
    """
    if family:
        key = family.strip().lower().replace("_", "-").replace(".", "")
        aliases = {
            "sd15": "sd1",
            "sd1x": "sd1",
            "sd": "sd1",
            "sd21": "sd2",
            "sd2x": "sd2",
            "xl": "sdxl",
            "sdturbo": "sd-turbo",
            "sdxlturbo": "sdxl-turbo",
        }
        key = aliases.get(key.replace("-", ""), key)
        if key not in FAMILY_BASE:
            raise BadInputError(f"Unknown model family {family!r}. Choose one of: {', '.join(FAMILY_BASE)}.")
        return key
    name = (model or "").lower()
    turbo = "turbo" in name
    if "xl" in name:
        return "sdxl-turbo" if turbo else "sdxl"
    if turbo:
        return "sd-turbo"
    if any(tag in name for tag in ("stable-diffusion-2", "sd2", "sd-2", "v2-")):
        return "sd2"
    return "sd1"


def channel(key: str) -> ChannelFormat:
    """The channel format named ``key``, with a clear error listing the valid ones."""
    try:
        return CHANNELS[key]
    except KeyError:
        raise BadInputError(f"Unknown channel format {key!r}. Choose one of: {', '.join(CHANNELS)}.") from None


def size_for(channel_key: str, family: str = "sd1") -> tuple[int, int]:
    """(width, height) in pixels at which ``family`` renders ``channel_key``."""
    fam = model_family(None, family)
    fmt = channel(channel_key)
    table = _SIZES.get(fam) or (_SIZES["sd1"] if FAMILY_BASE[fam] == 512 else {})
    return table.get(fmt.key) or fit_ratio(fmt.ratio, FAMILY_BASE[fam])


def fit_ratio(ratio: float, base: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """Width and height (multiples of ``multiple``) closest to ``ratio`` with about ``base²`` pixels."""
    if ratio <= 0:
        raise BadInputError("An aspect ratio must be positive.")
    best: tuple[float, int, int] | None = None
    area = base * base
    for height in range(multiple, 3 * base + 1, multiple):
        width = max(multiple, round(height * ratio / multiple) * multiple)
        if not 0.7 * area <= width * height <= 1.15 * area:
            continue
        error = abs(math.log((width / height) / ratio)) + 0.2 * abs(math.log(width * height / area))
        if best is None or error < best[0]:
            best = (error, width, height)
    if best is None:
        side = round(base / multiple) * multiple
        return side, side
    return best[1], best[2]


#: Sizes the local score engine offers (it makes square images only): the one list the Generate
#: page, campaigns and templates use. 96 and 128 px are practical since the per-offset exact path
#: (core.score.offsets); the Generate page shows time and memory before a run.
LOCAL_SCORE_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128)


def local_score_size(requested: int | None = None) -> int:
    """The nearest square size the local score engine supports (default 32 px)."""
    target = 32 if requested is None else int(requested)
    return min(LOCAL_SCORE_SIZES, key=lambda s: (abs(s - target), s))
