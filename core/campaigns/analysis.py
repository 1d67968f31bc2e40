"""Originality / copy-risk figures for campaign images (used by campaign jobs and the Campaigns page).

``core.analyzer`` is optional: when it provides ``analyze_generation(record)`` or
``analyze_image(image, library)`` this module turns it into the ``analyze(record)`` callable the
:class:`core.campaigns.CampaignRunner` takes; otherwise :func:`make_analyzer` returns None and the
page shows "not analysed".

The library compared against: the one a local score campaign was assembled from (that is what it
could have copied), else the brand kit's default library, else "faces".

The figures are those of the one copy verdict (:mod:`core.analyzer.verdict`): a studio (local score) image
compared with its own library gets the verdict of its exact sources (no search needed), any other image
the verdict of the library search. The verdict is kept with the item (``analysis["verdict"]``) so the
card, the contact sheet and the CSV manifest show the same words and figures as the Originality check.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from core.campaigns import LOCAL_SCORE, CampaignRecord, CampaignStore
from core.libraries import LibraryManager
from core.templates import load_brand_kit

logger = logging.getLogger(__name__)

FALLBACK_LIBRARY = "faces"
Analyze = Callable[[Any], Mapping[str, Any] | None]


def _analyzer_module():
    try:
        return importlib.import_module("core.analyzer")
    except Exception as err:  # missing or half-finished: the page works without figures
        logger.info("no analyzer available: %s", err)
        return None


def analyzer_available() -> bool:
    module = _analyzer_module()
    return module is not None and (
        callable(getattr(module, "analyze_generation", None)) or callable(getattr(module, "analyze_image", None))
    )


def analysis_library(campaign: CampaignRecord, campaigns: CampaignStore, libraries: LibraryManager) -> str:
    """The reference library to compare a campaign's images with."""
    known = {info.name for info in libraries.list()}
    candidates: list[str | None] = []
    if campaign.engine == LOCAL_SCORE:
        items = campaigns.items(campaign.id)
        if items:
            candidates.append((items[0].spec.get("request") or {}).get("library"))
    try:
        candidates.append(load_brand_kit().library)
    except Exception as err:  # a broken brand kit file must not stop the analysis
        logger.warning("brand kit unreadable: %s", err)
    for name in candidates:
        if name and name in known:
            return name
    return FALLBACK_LIBRARY


def verdict_figures(verdict: Any) -> dict[str, Any]:
    """A :class:`~core.analyzer.verdict.Verdict` as the runner's figures: ``copy_risk`` is the figure that
    decided the label (a fraction), ``copy_risk_label`` the risk (low, medium, high)."""
    return {
        "originality": float(verdict.originality),
        "copy_risk": float(verdict.headline_value),
        "copy_risk_label": verdict.risk,
        "summary": verdict.summary,
        "verdict": verdict.to_json(),
    }


def item_verdict(item: Any) -> Any:
    """The verdict kept with a campaign item, or None (not analysed, or analysed before verdicts existed)."""
    data = (getattr(item, "analysis", None) or {}).get("verdict")
    if data is None:
        return None
    from core.analyzer.verdict import Verdict

    try:
        return Verdict.from_json(data)
    except (ValueError, TypeError) as err:
        logger.warning("campaign item %s: unreadable verdict: %s", getattr(item, "id", "?"), err)
        return None


def figures(result: Any) -> dict[str, Any]:
    """An analyzer result (a verdict, an analysis, or another object or mapping) as the runner's figures."""
    from core.analyzer.result import AnalysisResult
    from core.analyzer.verdict import Verdict, final_verdict

    if isinstance(result, Verdict):
        return verdict_figures(result)
    if isinstance(result, AnalysisResult):
        return verdict_figures(final_verdict(result))
    data = dict(result) if isinstance(result, Mapping) else {}
    get = data.get if data else (lambda key, default=None: getattr(result, key, default))
    originality = get("originality")
    risk = get("copy_risk")
    out: dict[str, Any] = {}
    if isinstance(originality, int | float) and not isinstance(originality, bool):
        out["originality"] = float(originality)
    if isinstance(risk, int | float) and not isinstance(risk, bool):
        out["copy_risk"] = float(risk)
        label = get("copy_risk_label")
        if label:
            out["copy_risk_label"] = str(label)
    elif risk:
        out["copy_risk_label"] = str(risk)
        near = get("near_copy")
        score = near.get("score") if isinstance(near, Mapping) else getattr(near, "score", None)
        if isinstance(score, int | float) and not isinstance(score, bool):
            out["copy_risk"] = float(score)  # how much of the image the closest library picture explains
    summary = get("summary")
    if summary:
        out["summary"] = str(summary)
    return out


def make_analyzer(campaign: CampaignRecord, campaigns: CampaignStore, libraries: LibraryManager) -> Analyze | None:
    """The ``analyze(record)`` callable for this campaign, or None when no analyzer is installed."""
    module = _analyzer_module()
    if module is None:
        return None
    by_record = getattr(module, "analyze_generation", None)
    by_image = getattr(module, "analyze_image", None)
    if not callable(by_record) and not callable(by_image):
        return None
    library = analysis_library(campaign, campaigns, libraries)

    def analyze(record, on_progress: Callable[[float, str], None] | None = None) -> Mapping[str, Any] | None:
        from core.analyzer.verdict import studio_verdict

        exact = studio_verdict(record, campaigns.store, libraries, library)
        if exact is not None:  # a studio image of this library: its exact sources decide
            return verdict_figures(exact)
        if callable(by_record):
            result = by_record(record)
        else:
            result = by_image(campaigns.store.image(record), library, libraries=libraries, on_progress=on_progress)
        return figures(result) or None

    analyze.library = library  # type: ignore[attr-defined]
    analyze.reports_progress = True  # type: ignore[attr-defined]  # takes on_progress(fraction, message)
    return analyze
