"""Campaign planning: a template + the user's values → the concrete list of images to make.

:func:`plan_campaign` expands a template's channels × styles × guidance values × seeds into
:class:`Variation` objects, each with its final prompt, negative prompt, size, seed and the
settings of one engine request (:meth:`Variation.build_request`).

Stable Diffusion (``engine="sd"``) uses everything. The local score engine has no text model: it
assembles images from a reference library, so prompts are kept only as the brief, styles become
locality presets, the guidance sweep is dropped and every channel is rendered square. The plan's
``notices`` say so in plain words.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.config import DEFAULT_WORKSPACE
from core.engines.base import GenerationRequest
from core.errors import BadInputError, MosaicError
from core.templates.brand import BrandKit
from core.templates.formats import (
    CHANNELS,
    FAMILY_LABELS,
    TURBO_FAMILIES,
    local_score_size,
    model_family,
    size_for,
)
from core.templates.library import get_template
from core.templates.schema import MAX_VARIATIONS, Template

logger = logging.getLogger(__name__)

SD = "sd"
LOCAL_SCORE = "local-score"
_SD_ALIASES = {"sd", "stable-diffusion", "stablediffusion", "diffusers"}
DEFAULT_LOCAL_STEPS = 20
DEFAULT_LOCAL_LIBRARY = "photos"
DEFAULT_LOCAL_PRESETS = ("balanced",)


def normalise_engine(engine: str) -> tuple[str, dict[str, Any]]:
    """``"sd"`` or ``"local-score"`` (plus request overrides: a machine name selects that machine)."""
    key = (engine or "").strip().lower()
    if key in _SD_ALIASES:
        return SD, {}
    from core.engines.registry import resolve

    try:
        return resolve(key)
    except BadInputError:
        raise BadInputError(f"Unknown engine {engine!r}. Choose 'sd' (Stable Diffusion) or 'local-score'.") from None


@dataclass
class Variation:
    """One image of a campaign: where it goes, how it looks and the engine request that makes it."""

    index: int
    channel: str
    width: int
    height: int
    style: str
    seed: int
    prompt: str
    negative_prompt: str
    engine: str
    model: str | None = None
    guidance: float | None = None
    #: keyword arguments of the engine's request class (seed and count included)
    request: dict[str, Any] = field(default_factory=dict)
    #: False for the local score engine, which has no text model (the prompt is only the brief)
    prompt_used: bool = True

    @property
    def channel_label(self) -> str:
        fmt = CHANNELS.get(self.channel)
        return fmt.label if fmt else self.channel

    @property
    def title(self) -> str:
        parts = [self.channel_label.split(" (")[0], self.style]
        if self.guidance is not None:
            parts.append(f"guidance {self.guidance:g}")
        parts.append(f"seed {self.seed}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variation:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_seed(self, seed: int) -> Variation:
        """The same variation with another seed (to regenerate it)."""
        request = dict(self.request, seed=int(seed))
        return dataclasses.replace(self, seed=int(seed), request=request)

    def build_request(self) -> GenerationRequest:
        return build_request(self.engine, self.request)


@dataclass
class CampaignPlan:
    """What a campaign will make. Persist it with ``CampaignStore.create(plan)``."""

    name: str
    template_id: str
    template_name: str
    fields: dict[str, Any]
    engine: str
    model: str | None
    family: str | None
    seed: int
    variations: list[Variation]
    notices: list[str] = field(default_factory=list)
    brand_kit: dict[str, Any] | None = None
    template: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.variations)

    def requests(self) -> list[GenerationRequest]:
        return [v.build_request() for v in self.variations]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["count"] = self.count
        return data


def build_request(engine: str, kwargs: Mapping[str, Any]) -> GenerationRequest:
    """The engine request for a variation's ``request`` settings (unknown keys are dropped)."""
    if engine == LOCAL_SCORE:
        from core.engines.local_score import LocalScoreRequest

        cls: type[GenerationRequest] = LocalScoreRequest
    elif engine == SD:
        cls = sd_request_class()
    else:
        raise BadInputError(f"Engine {engine!r} is not available for campaigns.")
    names = {f.name for f in dataclasses.fields(cls)}
    dropped = sorted(set(kwargs) - names)
    if dropped:
        logger.debug("%s ignores %s", cls.__name__, dropped)
    return cls(**{k: v for k, v in kwargs.items() if k in names})


def sd_request_class() -> type[GenerationRequest]:
    """``core.engines.sd.SDRequest``, with a clear message while that engine is not installed."""
    try:
        from core.engines import sd  # type: ignore[attr-defined]
    except ImportError as err:
        raise MosaicError(
            "The Stable Diffusion engine is not available in this installation. "
            "Plan the campaign with the local score engine instead."
        ) from err
    return sd.SDRequest


def library_title(name: str, workspace: str = DEFAULT_WORKSPACE) -> str:
    """The title people know a library by ("Faces and backgrounds"); its name when it cannot be read."""
    from core.errors import MosaicError
    from core.libraries import LibraryManager

    try:
        return LibraryManager(workspace=workspace).get(name).title or name
    except (MosaicError, OSError, ValueError) as err:
        logger.debug("library %s: no title (%s)", name, err)
        return name


def plan_campaign(
    template: Template | str,
    fields: Mapping[str, Any] | None = None,
    engine: str = SD,
    model: str | None = None,
    brand_kit: BrandKit | Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    seed: int | None = None,
    channels: Sequence[str] | None = None,
    styles: Sequence[str] | None = None,
    seeds: int | None = None,
    guidance: Sequence[float] | None = None,
    family: str | None = None,
    steps: int | None = None,
    library: str | None = None,
    label: str | None = None,
    size: int | None = None,
    machine: str | None = None,
    scale: float = 1.0,
    workspace: str = DEFAULT_WORKSPACE,
) -> CampaignPlan:
    """Expand ``template`` with the user's ``fields`` into a :class:`CampaignPlan`.

    ``channels`` / ``styles`` pick a subset (by key / name), ``seeds`` and ``guidance`` override the
    template's sweep. ``family`` (``sd1``/``sdxl``; else guessed from ``model``) sets SD sizes.
    ``scale`` (0.1-1) shrinks SD sizes for quick drafts. ``steps`` applies to both engines (SD: else the
    model family's preset decides). ``library``, ``label``, ``size`` and ``machine`` are local score settings.
    ``workspace`` is whose templates a template id is looked up in (besides the built-in ones).
    Raises BadInputError naming the field or setting that is wrong.
    """
    tpl = get_template(template, workspace)
    engine_name, overrides = normalise_engine(engine)
    if machine is None:
        machine = overrides.get("machine")
    kit = brand_kit if isinstance(brand_kit, BrandKit) or brand_kit is None else BrandKit.from_dict(dict(brand_kit))
    values = tpl.resolve_fields(fields)
    chosen_channels = _subset(tpl.channels, channels, "channel")
    style_names = _subset([s.name for s in tpl.variations.styles], styles, "style")
    chosen_styles = [s for s in tpl.variations.styles if s.name in style_names]
    n_seeds = tpl.variations.seeds if seeds is None else int(seeds)
    if not 1 <= n_seeds <= 16:
        raise BadInputError(f"Images per variation (seeds) must be between 1 and 16 (got {n_seeds}).")
    sweep: list[float | None] = list(tpl.variations.guidance if guidance is None else guidance)
    if not sweep or any(g is None or not 1.0 <= float(g) <= 30.0 for g in sweep):
        raise BadInputError("Guidance values must be between 1 and 30.")
    base_seed = secrets.randbelow(2**31 - 2**16) if seed is None else int(seed)
    notices: list[str] = []
    if kit is not None and not kit.is_empty:
        notices.append(_kit_notice(kit))

    variations: list[Variation] = []
    if engine_name == SD:
        hints = tpl.engine_hints.get("sd", {})
        model = model or hints.get("model")
        fam = model_family(model, family or hints.get("family"))
        if not 0.1 <= float(scale) <= 1.0:
            raise BadInputError(f"The size scale must be between 0.1 and 1 (got {scale}).")
        notices.append(f"Sizes are chosen for {FAMILY_LABELS[fam]}; scale to the delivery size afterwards.")
        if float(scale) != 1.0:
            notices.append(f"Draft sizes: every image is made at {float(scale):g}× the model's normal size.")
        if fam in TURBO_FAMILIES:
            sweep = [None]
            notices.append("Turbo models run without guidance: the guidance sweep is skipped.")
        sd_steps = steps or (None if fam in TURBO_FAMILIES else hints.get("steps"))
        k = 0
        for ch in chosen_channels:
            width, height = _scaled(size_for(ch, fam), scale)
            for style in chosen_styles:
                prompt, negative = _prompts(tpl, values, style, ch, kit)
                for _ in range(n_seeds):
                    image_seed = base_seed + k
                    k += 1
                    for g in sweep:
                        request = {
                            "model": model,
                            "task": hints.get("task", "txt2img"),
                            "prompt": prompt,
                            "negative_prompt": negative,
                            "steps": None if sd_steps is None else int(sd_steps),
                            "guidance": None if g is None else float(g),
                            "width": width,
                            "height": height,
                            "scheduler": hints.get("scheduler"),
                            "preset": hints.get("preset"),
                            "seed": image_seed,
                            "count": 1,
                        }
                        variations.append(
                            Variation(
                                index=len(variations),
                                channel=ch,
                                width=width,
                                height=height,
                                style=style.name,
                                seed=image_seed,
                                prompt=prompt,
                                negative_prompt=negative,
                                engine=SD,
                                model=model,
                                guidance=None if g is None else float(g),
                                request={key: v for key, v in request.items() if v is not None},
                            )
                        )
    else:
        fam = None
        hints = tpl.engine_hints.get("local_score", {})
        lib = library or (kit.library if kit and kit.library else None) or hints.get("library") or DEFAULT_LOCAL_LIBRARY
        side = local_score_size(size if size is not None else hints.get("size"))
        presets = list(hints.get("presets") or DEFAULT_LOCAL_PRESETS)
        cls_label = label if label is not None else hints.get("label")
        machine = machine or hints.get("machine") or "bbels"
        model = machine
        notices.append(
            "The offline option has no text model: it assembles each image from small pieces of the pictures "
            f"in the library “{library_title(lib, workspace)}”, so the words of the brief and the brand words are "
            "not read (they are kept with the images as the brief). What changes between images: the size of "
            "the pieces for each look and the random seed"
            + (f", and the kind of picture (“{cls_label}”)." if cls_label else ".")
        )
        if len(sweep) > 1:
            notices.append("The template's guidance values are skipped: the offline option has no guidance setting.")
        if any(ch != "square" for ch in chosen_channels):
            notices.append(
                f"The offline option makes square images only: every channel is made {side}×{side} px; "
                "crop or extend them for non-square channels."
            )
        k = 0
        for ch in chosen_channels:
            for style in chosen_styles:
                preset = presets[tpl.variations.styles.index(style) % len(presets)] if presets else "balanced"
                prompt, negative = _prompts(tpl, values, style, ch, kit)
                for _ in range(n_seeds):
                    image_seed = base_seed + k
                    k += 1
                    request = {
                        "library": lib,
                        "machine": machine,
                        "size": side,
                        "preset": preset,
                        "steps": int(steps or hints.get("steps", DEFAULT_LOCAL_STEPS)),
                        "label": cls_label,
                        "seed": image_seed,
                        "count": 1,
                    }
                    variations.append(
                        Variation(
                            index=len(variations),
                            channel=ch,
                            width=side,
                            height=side,
                            style=f"{style.name} ({preset})",
                            seed=image_seed,
                            prompt=prompt,
                            negative_prompt=negative,
                            engine=LOCAL_SCORE,
                            model=machine,
                            guidance=None,
                            request=request,
                            prompt_used=False,
                        )
                    )
    if len(variations) > MAX_VARIATIONS:
        raise BadInputError(
            f"This campaign would make {len(variations)} images; at most {MAX_VARIATIONS}. "
            "Choose fewer channels, styles, seeds or guidance values."
        )
    plan_name = (name or "").strip() or _default_name(tpl, values)
    return CampaignPlan(
        name=plan_name[:120],
        template_id=tpl.id,
        template_name=tpl.name,
        fields=_jsonable(values),
        engine=engine_name,
        model=model,
        family=fam,
        seed=base_seed,
        variations=variations,
        notices=notices,
        brand_kit=kit.to_dict() if kit is not None and not kit.is_empty else None,
        template=tpl.to_dict(),
    )


def _prompts(
    tpl: Template, values: Mapping[str, Any], style, channel_key: str, kit: BrandKit | None
) -> tuple[str, str]:
    prompt, negative = tpl.render(values, style, channel_key)
    if kit is not None:
        prompt, negative = kit.apply(prompt, negative)
    return prompt, negative


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``size`` shrunk by ``scale`` keeping its aspect, sides multiples of 8, the short side at least 64."""
    width, height = size
    factor = max(float(scale), 64 / min(width, height))
    return max(64, round(width * factor / 8) * 8), max(64, round(height * factor / 8) * 8)


def _subset(available: list[str], wanted: Iterable[str] | None, what: str) -> list[str]:
    if wanted is None:
        return list(available)
    chosen = []
    for item in wanted:
        if item not in available:
            raise BadInputError(f"This template has no {what} {item!r}. Choose from: {', '.join(available)}.")
        if item not in chosen:
            chosen.append(item)
    if not chosen:
        raise BadInputError(f"Choose at least one {what}.")
    return [a for a in available if a in chosen]


def _kit_notice(kit: BrandKit) -> str:
    parts = []
    if kit.palette:
        parts.append("palette words")
    if kit.must_use:
        parts.append("must-use words")
    text = " and ".join(parts)
    notice = f"Brand kit applied: {text} added to every prompt" if text else "Brand kit applied"
    if kit.avoid:
        notice += ("; " if text else ": ") + "avoid-words added to the negative prompt"
    return notice + "."


def _default_name(tpl: Template, values: Mapping[str, Any]) -> str:
    for f in tpl.fields:
        value = values.get(f.key)
        if f.required and isinstance(value, str) and value:
            return f"{tpl.name}: {value[:60]}"
    return tpl.name


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
