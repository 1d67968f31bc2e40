"""Fast drafts in tests: the planner keeps a draft only where it is estimated to win, counting the
first run's index build; tests that need the draft path build the index first, as a first run would."""

from __future__ import annotations

from core import config
from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
from core.score import sample, seeded_noise


def build_indexes(engine: LocalScoreEngine, request: LocalScoreRequest) -> None:
    """Build and store the patch indexes the fast draft of ``request`` uses."""
    plan = engine.plan(request)
    lib = engine.libraries.load(request.library, int(request.size))
    noise = seeded_noise([1], lib.images.shape[1], int(request.size))
    sample(lib.images, noise, request.machine, plan["schedule"], approximate=True, index_dir=config.score_indexes_dir())


def drafts(engine: LocalScoreEngine, candidates, build: bool = True, top_k: int | None = None):
    """The candidate ``(library, size, machine, count)`` requests split by the planner into (draft
    kept, exact instead), with their indexes built first when ``build``."""
    kept, exact = [], []
    for library, size, machine, count in candidates:
        request = LocalScoreRequest(
            seed=3, library=library, size=size, machine=machine, count=count, approximate=True, top_k=top_k
        )
        if build:
            build_indexes(engine, request)
        (kept if engine.plan(request)["approximate"] else exact).append(request)
    return kept, exact
