"""What each kind of job does. A handler takes a :class:`JobContext` and returns a closing message.

Handlers are written to be run again after a crash: they read what an earlier attempt finished
from ``context.result`` and only do the rest (a generation keeps the images it saved, a campaign
its finished items).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from core.errors import BadInputError
from core.jobs.context import JobContext
from core.words import plural

logger = logging.getLogger(__name__)

Handler = Callable[[JobContext], str]


def _engine(context: JobContext, name: str):
    """One engine per worker, name and workspace: the SD pipeline and libraries stay loaded between jobs.

    Engines that read libraries (local score, trained) read the job's workspace's, so each workspace
    has its own; the Stable Diffusion engine reads none and is shared.
    """
    from core.engines.registry import get_engine, resolve

    engine_name, _ = resolve(name)
    key = "engine:sd" if engine_name == "sd" else f"engine:{engine_name}:{context.workspace}"
    if key not in context.cache:
        context.cache[key] = get_engine(name, context.workspace)
    return context.cache[key]


def generate(context: JobContext) -> str:
    """Make the request's images, saving each one in the gallery as it is finished."""
    from core.jobs.requests import decode_request

    engine_name, request = decode_request(context.params)
    done: list[str] = list(context.result.get("records") or [])
    batch_id = context.result.get("batch_id") or context.job.id[:12]
    remaining = int(request.count) - len(done)
    if remaining <= 0:
        return _made(len(done))
    if done:  # an earlier attempt saved the first images: make the others with their own seeds
        request = dataclasses.replace(request, seed=int(request.seed) + len(done), count=remaining)
    engine = _engine(context, engine_name)
    store = context.store()
    title = str(context.params.get("title") or "")

    def saved(record) -> None:
        done.append(record.id)
        context.save_result(records=list(done), batch_id=batch_id)

    from core.engines.saving import generate_and_save

    generate_and_save(
        engine,
        request,
        store,
        title=title,
        batch_id=batch_id,
        on_saved=saved,
        on_progress=context.engine_progress,
        cancel=context.cancel,
    )
    return _made(len(done))


def _made(count: int) -> str:
    return f"Done: {plural(count, 'image')} saved to the gallery."


def campaign(context: JobContext) -> str:
    """Generate a campaign's pending items (claimed one by one, so two runs never make the same item)."""
    from core.campaigns.runner import CampaignRunner
    from core.campaigns.store import CampaignStore

    campaign_id = str(context.params.get("campaign_id") or "")
    if not campaign_id:
        raise BadInputError("This campaign job names no campaign.")
    item_ids = context.params.get("item_ids")
    campaigns = CampaignStore(context.store())
    analyze = None
    if context.params.get("analyse"):  # originality and copy-risk figures of each new image
        from core.campaigns.analysis import make_analyzer

        analyze = make_analyzer(campaigns.get(campaign_id), campaigns, context.libraries())
    runner = CampaignRunner(campaigns, engines=lambda name: _engine(context, name), analyze=analyze)
    if context.params.get("analyse_only"):  # figures for the images already made, nothing generated
        from core.campaigns.analysis import make_analyzer

        checker = make_analyzer(campaigns.get(campaign_id), campaigns, context.libraries())
        if checker is None:
            raise BadInputError("The originality check is not available in this studio.")
        checked = runner.analyze_items(campaign_id, checker, on_progress=context.engine_progress)
        context.save_result(campaign_id=campaign_id, checked=checked)
        return f"Checked the originality of {plural(checked, 'image')}."
    context.save_result(campaign_id=campaign_id)
    report = runner.run(campaign_id, on_progress=context.engine_progress, cancel=context.cancel, item_ids=item_ids)
    if report.cancelled:
        from core.errors import GenerationCancelled

        context.save_result(**report.as_dict())
        raise GenerationCancelled(
            f"Campaign paused: {plural(len(report.made), 'image')} made in this run kept. Resume it to finish."
        )
    context.save_result(**report.as_dict())
    text = f"Campaign {report.status}: {plural(len(report.made), 'image')} made"
    if report.failed:
        text += f", {len(report.failed)} failed ({report.errors[0]})"
    return text + "."


def analyze(context: JobContext) -> str:
    """Originality check of one image against a library; the result is saved in the job's folder."""
    from core.analyzer.jobs import run_analysis_job

    return run_analysis_job(context)


def lab(context: JobContext) -> str:
    """A Creativity Lab experiment (see :mod:`core.lab.jobs`)."""
    from core.lab.jobs import run_lab_job

    return run_lab_job(context)


def library_import(context: JobContext) -> str:
    """Pictures, zips or a folder into a library (see :mod:`core.libraries.jobs`)."""
    from core.libraries.jobs import run_import_job

    return run_import_job(context)


HANDLERS: dict[str, Handler] = {
    "generate": generate,
    "campaign": campaign,
    "analyze": analyze,
    "lab": lab,
    "library-import": library_import,
}


def run_handler(context: JobContext) -> str:
    handler = HANDLERS.get(context.job.kind)
    if handler is None:
        raise BadInputError(f"This studio cannot run jobs of kind {context.job.kind!r}.")
    return handler(context)
