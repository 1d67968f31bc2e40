"""The patch-mosaic analyzer: which library images an image recombines, how much, and copy risk.

::

    from core.analyzer import analyze_image
    result = analyze_image(pil_image, "photos")          # pixel space
    result.summary, result.originality, result.copy_risk
    result.to_json()                                       # for the CLI

See ``docs/originality.md`` for what the originality score and copy-risk flag mean.
"""

from core.analyzer.analyzer import Analyzer, analyze_image, index_library
from core.analyzer.compare import SourceAgreement, compare_with_exact_sources
from core.analyzer.render import (
    rebuilt_image,
    similarity_heatmap,
    source_map_image,
    top_source_images,
)
from core.analyzer.result import AnalysisResult, NearCopy, Region, ScaleResult, SourceShare
from core.analyzer.settings import AnalyzerSettings

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
