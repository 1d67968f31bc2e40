"""The originality check as a background job: its parameters, what the worker does, and reading its result.

Pages and the CLI build the job's parameters with :func:`analysis_params` and submit an ``analyze``
job; a worker runs :func:`run_analysis_job` (registered in :mod:`core.jobs.handlers`), which saves the
result in the job's folder (:mod:`core.analyzer.saved`); :func:`load_job_analysis` reads it back.

Parameters (plain JSON): ``library``, ``space`` (``pixel`` or ``latent``), ``model`` (the Stable
Diffusion model whose VAE gives the latent view, else None), ``settings`` (:class:`AnalyzerSettings`
fields, or None for the defaults), and the subject: ``record_id`` (a saved image) or ``upload`` (a
picture kept by :func:`core.jobs.requests.save_upload_image`). ``label`` names the subject in titles.

A saved studio (local score) image checked against its own library gets the verdict of its exact sources
(:func:`core.analyzer.verdict.studio_verdict`); any other image the verdict of the library search.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from core.analyzer.result import AnalysisResult
from core.analyzer.saved import DAMAGED, load_analysis, save_analysis
from core.analyzer.settings import SPACES, AnalyzerSettings
from core.analyzer.verdict import attach, final_verdict, studio_verdict
from core.errors import BadInputError, GenerationCancelled

if TYPE_CHECKING:
    from core.jobs.context import JobContext
    from core.jobs.models import JobRecord
    from core.store import Store

logger = logging.getLogger(__name__)

#: the folder inside the job's folder that holds its result
RESULT_FOLDER = "analysis"
_SETTING_FIELDS = {f.name: f for f in dataclasses.fields(AnalyzerSettings) if f.name != "extra"}


def settings_to_json(settings: AnalyzerSettings | None) -> dict[str, Any] | None:
    return None if settings is None else settings.to_json()


def settings_from_json(data: Any) -> AnalyzerSettings | None:
    """The settings of a job's parameters (None = the defaults); unknown or mistyped fields are refused."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise BadInputError("This originality check's settings are not readable; start the check again.")
    defaults = AnalyzerSettings()
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _SETTING_FIELDS:
            raise BadInputError(f"This originality check has an unknown setting {name!r}; start the check again.")
        default = getattr(defaults, name)
        if name == "scales":
            ok = isinstance(value, list) and value and all(isinstance(v, int) and 1 <= v <= 512 for v in value)
            value = tuple(value) if ok else None
        elif name == "scale_levels":
            ok = isinstance(value, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0.1 <= v <= 10 and v != 1 for v in value
            )
            value = tuple(float(v) for v in value) if ok else None
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            value = float(value) if ok else value
        if not ok or value is None:
            raise BadInputError(f"This originality check's setting {name!r} has an unusable value {data[name]!r}.")
        values[name] = value
    return AnalyzerSettings(**values)


def analysis_params(
    library: str,
    space: str = "pixel",
    model: str | None = None,
    settings: AnalyzerSettings | None = None,
    record_id: str | None = None,
    upload: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    """JSON parameters of an ``analyze`` job: exactly one of ``record_id`` and ``upload`` names the image."""
    if (record_id is None) == (upload is None):
        raise BadInputError("Choose one image to check: a saved image or a picture from your computer.")
    if space not in SPACES:
        raise BadInputError(f"Unknown analysis space {space!r}: choose 'pixel' or 'latent'.")
    if space == "latent" and not model:
        raise BadInputError("The image-model view needs a Stable Diffusion model; choose one, or compare pixels.")
    params: dict[str, Any] = {
        "library": library,
        "space": space,
        "model": model if space == "latent" else None,
        "settings": settings_to_json(settings),
        "label": label,
    }
    if record_id is not None:
        params["record_id"] = record_id
    else:
        params["upload"] = upload
    return params


def analysis_title(label: str, library_title: str) -> str:
    return f"{label} against {library_title}" if label else f"An image against {library_title}"


def _upload_image(name: Any) -> Image.Image:
    from core.jobs.requests import uploads_dir

    folder = uploads_dir().resolve()
    path = (folder / str(name)).resolve()
    if not isinstance(name, str) or path.parent != folder or not path.is_file():
        raise BadInputError("The picture to check is missing from the studio's uploads folder; upload it again.")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise BadInputError(f"The uploaded picture to check cannot be read ({err}); upload it again.") from None


def subject_image(params: dict[str, Any], store: Store) -> Image.Image:
    """The picture an ``analyze`` job checks: a saved image (of ``store``'s workspace) or an uploaded picture."""
    if params.get("record_id"):
        return store.image(store.get(str(params["record_id"])))
    if params.get("upload"):
        return _upload_image(params["upload"])
    raise BadInputError("This originality check names no image to check.")


def job_result_folder(job_id: str) -> Path:
    from core.jobs.context import job_folder

    return job_folder(job_id) / RESULT_FOLDER


def load_job_analysis(job: JobRecord) -> AnalysisResult:
    """The result of a finished ``analyze`` job; :class:`BadInputError` when it is missing or damaged."""
    name = (job.result or {}).get("analysis")
    if job.kind != "analyze" or name != RESULT_FOLDER:
        raise BadInputError(DAMAGED)
    return load_analysis(job_result_folder(job.id))


def _closing(result: AnalysisResult) -> str:
    verdict = final_verdict(result)
    return f"Done: originality {verdict.originality} / 100, {verdict.label.lower()}."


def run_analysis_job(context: JobContext) -> str:
    """Worker side of an ``analyze`` job: check the image against the library and save the result.

    Safe to run again: a result an earlier attempt saved completely is kept as it is.
    """
    params = context.params
    if context.result.get("analysis") == RESULT_FOLDER:
        try:
            return _closing(load_analysis(job_result_folder(context.job.id)))
        except BadInputError:
            logger.info("job %s: the earlier attempt's result is unreadable; checking again", context.job.id)
    library = params.get("library")
    space = params.get("space") or "pixel"
    if not isinstance(library, str) or not library:
        raise BadInputError("This originality check names no library to compare with.")
    if space not in SPACES:
        raise BadInputError(f"Unknown analysis space {space!r}: choose 'pixel' or 'latent'.")
    model = params.get("model")
    if space == "latent" and (not isinstance(model, str) or not model):
        raise BadInputError("The image-model view needs a Stable Diffusion model; choose one, or compare pixels.")
    settings = settings_from_json(params.get("settings"))
    image = subject_image(params, context.store())

    def report(fraction: float, message: str) -> None:
        if context.cancel.cancelled:
            raise GenerationCancelled("Check cancelled.")
        context.progress(fraction, message or "Checking…")

    vae = None
    if space == "latent":
        report(0.0, "Loading the image model (the first time takes a while)…")
        from core.engines.registry import get_engine

        key = "engine:sd"
        if key not in context.cache:
            context.cache[key] = get_engine("sd")
        vae = context.cache[key].vae_for(model).vae
    from core.analyzer.analyzer import Analyzer

    libraries = context.libraries()
    result = Analyzer(libraries, settings).analyze(image, library, space, vae, on_progress=report)
    context.cancel.raise_if_cancelled()
    if params.get("record_id"):  # a studio image checked against its own library: its exact sources decide
        store = context.store()
        exact = studio_verdict(store.get(str(params["record_id"])), store, libraries, library)
        if exact is not None:
            attach(result, exact)
    save_analysis(result, job_result_folder(context.job.id))
    verdict = final_verdict(result)
    context.save_result(
        analysis=RESULT_FOLDER, originality=verdict.originality, copy_risk=verdict.risk, summary=verdict.summary,
        verdict=verdict.to_json(),
    )
    return _closing(result)
