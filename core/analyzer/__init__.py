"""The patch-mosaic analyzer: which library images an image recombines, how much, and copy risk.

::

    from core.analyzer import analyze_image
    result = analyze_image(pil_image, "photos")          # pixel space
    result.summary, result.originality, result.copy_risk
    result.to_json()                                       # for the CLI

See ``docs/originality.md`` for what the originality score and copy-risk flag mean.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers; at run time names load on first use
    from core.analyzer.analyzer import Analyzer, analyze_image, index_library
    from core.analyzer.compare import SourceAgreement, compare_with_exact_sources
    from core.analyzer.render import rebuilt_image, similarity_heatmap, source_map_image, top_source_images
    from core.analyzer.result import AnalysisResult, NearCopy, Region, ScaleResult, SourceShare
    from core.analyzer.settings import AnalyzerSettings

#: where each public name lives: modules load on first use, so a command that only reads a saved analysis
#: (``python -m core analyze`` while a worker runs the check) does not load torch (1-2 s)
_HOMES = {
    "Analyzer": "analyzer",
    "analyze_image": "analyzer",
    "index_library": "analyzer",
    "SourceAgreement": "compare",
    "compare_with_exact_sources": "compare",
    "rebuilt_image": "render",
    "similarity_heatmap": "render",
    "source_map_image": "render",
    "top_source_images": "render",
    "AnalysisResult": "result",
    "NearCopy": "result",
    "Region": "result",
    "ScaleResult": "result",
    "SourceShare": "result",
    "AnalyzerSettings": "settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AnalysisResult",
    "Analyzer",
    "AnalyzerSettings",
    "NearCopy",
    "Region",
    "ScaleResult",
    "SourceAgreement",
    "SourceShare",
    "analyze_image",
    "compare_with_exact_sources",
    "index_library",
    "rebuilt_image",
    "similarity_heatmap",
    "source_map_image",
    "top_source_images",
]
