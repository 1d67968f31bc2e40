"""The command line: the same operations as the pages, scriptable, with ``--json`` output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import BadInputError, MosaicError
from core.words import plural

if TYPE_CHECKING:
    from core.store import Store

logger = logging.getLogger(__name__)


def _print(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _progress_printer(enabled: bool):
    def report(progress) -> None:
        if enabled:
            print(f"\r{progress.message} ({progress.fraction:.0%})", end="", file=sys.stderr, flush=True)

    return report


class _CountLine:
    """A ``progress(done, expected)`` callback shown on stderr as one line rewritten in place ("Reading:
    1,200 of 40,000 pictures · 310 a second · about 2 minutes left"), at most every quarter second
    and at the end; nothing when not ``enabled`` (``--json``)."""

    def __init__(self, verb: str, noun: str, enabled: bool) -> None:
        from core.libraries.progress import RateMeter

        self.verb, self.enabled = verb, enabled
        self.meter = RateMeter(noun)
        self.shown_at: float | None = None
        self.width = 0

    def __call__(self, done: int, expected: int) -> None:
        import time

        text = f"{self.verb}: {self.meter.update(done, expected)}"
        now = time.monotonic()
        if not self.enabled or (self.shown_at is not None and now - self.shown_at < 0.25 and done < expected):
            return
        self.shown_at = now
        self.width = max(self.width, len(text))
        print(f"\r{text.ljust(self.width)}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown_at is not None:
            print(file=sys.stderr, flush=True)
            self.shown_at = None


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``); anything else is refused with a message."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"from {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {span} (got {text!r})")
        return value

    return parse


# ----------------------------------------------------------------------- generate
def _local_score_request(args: argparse.Namespace, overrides: dict):
    from core.engines.local_score import LocalScoreRequest

    return LocalScoreRequest(
        seed=args.seed,
        count=args.count,
        library=args.library,
        machine=overrides.get("machine", args.machine),
        size=args.size,
        preset=args.preset,
        steps=20 if args.steps is None else args.steps,
        label=args.label,
        approximate=args.approximate,
        top_k=args.top_k,
        grid=args.grid,
    )


def _sd_request(args: argparse.Namespace):
    from core.engines.sd import SDRequest
    from core.images import load_image_file

    init = load_image_file(args.init_image).image if args.init_image else None
    mask = load_image_file(args.mask).image if args.mask else None
    task = args.task or ("inpaint" if mask is not None else "img2img" if init is not None else "txt2img")
    return SDRequest(
        seed=args.seed,
        count=args.count,
        model=args.model or "",
        task=task,
        prompt=args.prompt,
        negative_prompt=args.negative,
        steps=args.steps,
        guidance=args.guidance,
        width=args.width,
        height=args.height,
        scheduler=args.scheduler,
        strength=args.strength,
        init_image=init,
        mask_image=mask,
        preset=args.speed,
        model_config=args.model_config,
    )


def _trained_request(args: argparse.Namespace):
    from core.engines.trained import DEMO_MODEL_DIR, TrainedModelRequest

    return TrainedModelRequest(
        seed=args.seed,
        count=args.count,
        model_path=args.model or str(DEMO_MODEL_DIR),
        label=args.label,
        steps=20 if args.steps is None else args.steps,
    )


def _out_folder(raw: str | None) -> Path | None:
    """The ``--out`` folder, created and checked before anything is computed."""
    if not raw:
        return None
    out = Path(raw).expanduser()
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {raw}: this is a file, not a folder. Give a folder to copy the images into.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInputError(f"--out {raw}: the folder could not be created ({err.strerror or err}).") from err
    if not os.access(out, os.W_OK | os.X_OK):
        raise BadInputError(f"--out {raw}: this folder cannot be written to. Choose another folder.")
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    """Generation is a job: submitted to the queue, run by a worker (or here, when none is running)."""
    from core.engines.registry import resolve
    from core.jobs import JobQueue
    from core.jobs.cli import cli_owner, wait_for
    from core.jobs.requests import device_for, encode_request

    engine_name, overrides = resolve(args.engine)
    out = _out_folder(args.out)
    if engine_name == "sd":
        request = _sd_request(args)
    elif engine_name == "trained":
        request = _trained_request(args)
    else:
        request = _local_score_request(args, overrides)
    request.check_seed()
    validate = getattr(request, "validate", None)
    if callable(validate):
        validate()  # refuse impossible settings before queueing
    queue = JobQueue(store_of(args))  # opens (and checks) the database before anything is queued
    params = dict(encode_request(engine_name, request), title=args.title or "")
    what = getattr(request, "library", None) or getattr(request, "prompt", "") or engine_name
    title = f"{plural(request.count, 'image')}: {str(what)[:60]}"
    job = queue.submit("generate", params, owner=cli_owner(), title=title, device=device_for(engine_name))
    if args.no_wait:
        _print({"job": job.id}, args.json, f"job {job.id} queued (see 'python -m core jobs show {job.id}')")
        return 0
    try:
        job = wait_for(queue, job, show_progress=not args.json)
    except MosaicError:
        kept = len(queue.get(job.id).result.get("records") or [])
        if kept:
            print(f"{plural(kept, 'finished image')} saved to the gallery before the stop.", file=sys.stderr)
        raise
    store = queue.store
    records = [store.get(r) for r in job.result.get("records") or []]
    if out is not None:
        for record in records:
            try:
                shutil.copyfile(store.image_path(record), out / record.image_file)
            except OSError as err:
                raise MosaicError(
                    f"Could not copy image {record.id} into {out} ({err.strerror or err}); "
                    "it is saved in the gallery."
                ) from err
    data = [dict(r.as_dict(), path=str(store.image_path(r))) for r in records]
    lines = [f"{r['id']}  seed {r['seed']}  {r['width']}x{r['height']}  {r['path']}" for r in data]
    lines += [f"note: {n}" for r in data for n in r["params"].get("notices") or []]
    _print(data, args.json, "\n".join(lines))
    return 0



# ----------------------------------------------------------------------- libraries
def _info_dict(info) -> dict[str, Any]:
    return {
        "name": info.name,
        "title": info.title,
        "description": info.description,
        "kind": info.kind,
        "count": info.count,
        "channels": info.channels,
        "labels": list(info.label_names),
        "built": info.built,
    }


def _stopped_imports(manager, args: argparse.Namespace) -> int:  # noqa: ANN001 - LibraryManager
    """``libraries stopped``: imports kept part way, with the command that goes on with each."""
    from core.libraries.jobs import resume_command

    workspace = workspace_of(args)
    data = [
        {
            "library": s.library,
            "title": s.title,
            "sources": s.sources,
            "options": s.options,
            "pictures": s.pictures,
            "tried": s.tried,
            "stopped_at": s.stopped_at,
            "go_on": resume_command(s, workspace),
        }
        for s in manager.stopped_imports()
    ]
    lines = [
        f"{d['library']}: {plural(d['pictures'], 'picture')} read, then it stopped. "
        + (f"Go on: {d['go_on']}" if d["go_on"] else "")
        + f"  Drop: python -m core libraries discard {d['library']}"
        for d in data
    ]
    _print(data, args.json, "\n".join(lines) or "No import stopped part way.")
    return 0


def cmd_libraries(args: argparse.Namespace) -> int:
    from core.libraries import LibraryManager
    from core.libraries.datasource import DatasetOptions

    manager = LibraryManager(workspace=workspace_of(args))
    action = args.action
    if action == "list":
        infos = [_info_dict(i) for i in manager.list()]
        text = "\n".join(
            f"{i['name']:<20} {i['kind']:<8} {i['count'] if i['built'] else '(built at first use)'!s:>8}  {i['title']}"
            for i in infos
        )
        stopped = manager.stopped_imports()
        if stopped and not args.json:
            text += (
                f"\n{plural(len(stopped), 'import')} stopped part way: "
                "`python -m core libraries stopped` lists them."
            )
        _print(infos, args.json, text)
        return 0
    if action == "stopped":
        return _stopped_imports(manager, args)
    if not args.name:
        raise MosaicError(f"'libraries {action}' needs a library name.")
    if action == "discard":
        dropped = manager.discard_stopped(args.name)
        data = {"library": args.name, "discarded": dropped}
        _print(data, args.json, f"dropped {plural(dropped, 'stopped import')} into {args.name}")
        return 0
    if action == "show":
        info = manager.ensure(args.name)
        data = dict(_info_dict(info), items=manager.items(args.name))
        text = f"{info.title} ({info.name}): {info.count} images, labels: {', '.join(info.label_names) or 'none'}"
        _print(data, args.json, text)
        return 0
    if action == "add":
        if not args.paths:
            raise MosaicError("Give image files, a .zip, a folder or a dataset to add.")
        # One import for all paths, checked before anything is read; a new library appears only if it gets images.
        line = _CountLine("Reading", "picture", enabled=not args.json)
        try:
            reports = [
                manager.add_paths(
                    args.name,
                    list(args.paths),
                    title=args.title or "",
                    progress=line,
                    dataset=DatasetOptions(args.split, args.image_column, args.label_column),
                    restart=args.restart,
                )
            ]
        except KeyboardInterrupt:
            line.close()
            print("The pictures read so far are kept: run the same command again to go on.", file=sys.stderr)
            raise
        finally:
            line.close()
        data = [
            {"library": r.library, "added": r.added, "skipped": [list(s) for s in r.skipped], "notices": r.notices}
            for r in reports
        ]
        text = "\n".join(
            [f"added {plural(d['added'], 'picture')} to {d['library']}" for d in data]
            + [f"skipped {name}: {why}" for d in data for name, why in d["skipped"]]
            + [n for d in data for n in d["notices"]]
        )
        _print(data, args.json, text)
        return 0
    if action == "verify":
        from core.analyzer.index import verify_indexes

        info = manager.ensure(args.name)
        missing = [item["source"] for item in manager.items(args.name) if not Path(item["path"]).is_file()]
        checks = verify_indexes(manager, args.name)
        data = {
            "library": info.name,
            "pictures": info.count,
            "missing_pictures": missing,
            "search_data": [dataclasses.asdict(check) for check in checks],
        }
        state = "all on disk."
        if missing:
            state = f"{plural(len(missing), 'picture')} missing: {', '.join(missing[:10])}"
        lines = [f"{info.title}: {plural(info.count, 'picture')}, {state}"]
        if not checks:
            lines.append("Search data: not prepared yet (it is made the first time the library is used).")
        for check in checks:
            if check.problem is None:
                lines.append(f"Search data {check.key}: all {check.files} files match.")
            else:
                lines.append(f"Search data {check.key}: {check.problem}; removed, prepared again at its next use.")
        _print(data, args.json, "\n".join(lines))
        return 0
    if action == "delete":
        manager.delete(args.name)
        _print({"deleted": args.name}, args.json, f"deleted library {args.name}")
        return 0
    raise MosaicError(f"Unknown action {action!r}.")


# ----------------------------------------------------------------------- gallery
def cmd_gallery(args: argparse.Namespace) -> int:
    store = store_of(args, recover=True)
    records = store.list(limit=args.limit)
    data = [dict(r.as_dict(), path=str(store.image_path(r)), file_missing=not store.has_file(r)) for r in records]
    text = "\n".join(
        f"{d['id']}  {d['created_at']}  {d['engine']:<12} seed {d['seed']:<6} {d['path']}"
        + ("  (image file missing)" if d["file_missing"] else "")
        for d in data
    )
    _print(data, args.json, text or "No images yet.")
    return 0


# ----------------------------------------------------------------------- analyze
SOURCE_MAP_TYPES = (".png", ".jpg", ".jpeg", ".webp")


def _source_map_path(raw: str | None) -> Path | None:
    """The ``--source-map`` file, checked before the analysis runs (None when not given)."""
    if not raw:
        return None
    target = Path(raw).expanduser()
    if target.suffix.lower() not in SOURCE_MAP_TYPES:
        raise BadInputError(
            f"--source-map {raw}: the file name must end in {', '.join(SOURCE_MAP_TYPES)} (the picture type)."
        )
    if target.is_dir():
        raise BadInputError(f"--source-map {raw}: this is a folder. Give a file name, e.g. {target / 'map.png'}.")
    folder = target.parent
    if not folder.is_dir():
        raise BadInputError(f"--source-map {raw}: the folder {folder} does not exist. Create it first.")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise BadInputError(f"--source-map {raw}: cannot write there. Choose another place.")
    return target


def analysis_exports_dir(workspace: str) -> Path:
    """Where ``analyze`` writes its outputs without ``--out``: the workspace's ``exports/analyze`` folder
    (inside the data folder), never next to the checked image."""
    from core import config

    folder = config.workspace_dir(workspace) / "exports" / "analyze"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MosaicError(f"The exports folder {folder} could not be created ({err.strerror or err}).") from err
    return folder


def cmd_analyze(args: argparse.Namespace) -> int:
    """The originality check is a job (like the page's): run by a worker, or here when none is running."""
    from core.analyzer import source_map_image
    from core.analyzer.jobs import analysis_params, load_job_analysis
    from core.analyzer.verdict import final_verdict
    from core.images import load_image_file
    from core.jobs import FINISHED, JobQueue
    from core.jobs.cli import cli_owner, wait_for
    from core.jobs.requests import save_upload_image, uploads_dir

    path = Path(args.image)
    if not path.is_file():
        raise MosaicError(f"{args.image}: no such image file.")
    if args.source_map and args.out:
        raise BadInputError("Give either --out FOLDER or --source-map FILE, not both.")
    source_map = _source_map_path(args.source_map)
    out = _out_folder(args.out)  # checked (and made) before anything is computed
    if args.space == "latent" and not args.model:
        raise MosaicError("Latent-space analysis needs a Stable Diffusion model: add --model PATH_OR_ID.")
    image = load_image_file(path).image
    from core.libraries import LibraryManager

    store = store_of(args)
    if source_map is None and out is None:
        out = analysis_exports_dir(store.workspace)
    queue = JobQueue(store)
    LibraryManager(workspace=queue.workspace).get(args.library)  # an unknown library is refused before anything is kept
    before = {p.name for p in uploads_dir().iterdir()}
    upload = save_upload_image(image)
    ours = upload not in before  # the same picture kept by the page stays for it
    params = analysis_params(args.library, args.space, args.model, upload=upload, label=path.name[:200])
    job = queue.submit("analyze", params, owner=cli_owner(), title=f"Originality check of {path.name}"[:200])
    if args.no_wait:
        _print({"job": job.id}, args.json, f"job {job.id} queued (see 'python -m core jobs show {job.id}')")
        return 0
    try:
        job = wait_for(queue, job, show_progress=not args.json)
        result = load_job_analysis(job)
    finally:  # the command's own copy of the picture is not needed once its check has ended
        if ours and queue.get(job.id).state in FINISHED:
            (uploads_dir() / upload).unlink(missing_ok=True)
    data = result.to_json()
    if source_map is None:  # --out, or the data folder: named after the image and the check
        assert out is not None
        source_map = out / f"{path.stem}-{job.id[:8]}_sources.png"
    try:
        source_map_image(result).save(source_map)
    except OSError as err:
        raise MosaicError(f"Could not write the source map {source_map} ({err.strerror or err}).") from err
    data["source_map_png"] = str(source_map)
    verdict = final_verdict(result)
    text = "\n".join(
        [
            verdict.summary,
            f"originality {verdict.originality}/100 · {verdict.label.lower()} ({verdict.basis_line.lower()[:-1]})",
            f"source map written to {source_map}",
        ]
        + [f"note: {n}" for n in result.notices]
    )
    _print(data, args.json, text)
    return 0


# ----------------------------------------------------------------------- campaign
def cmd_campaign(args: argparse.Namespace) -> int:
    from core.campaigns import parse_field_args
    from core.templates import TemplateLibrary

    if args.list_templates:
        library = TemplateLibrary(workspace=workspace_of(args))
        templates = [{"id": t.id, "name": t.name, "purpose": t.purpose} for t in library.list()]
        _print(templates, args.json, "\n".join(f"{t['id']:<22} {t['purpose']}" for t in templates))
        return 0
    if args.list:
        return _list_campaigns(args)
    from core.campaigns import CampaignStore, plan_campaign
    from core.campaigns.cli import export_campaign_result
    from core.campaigns.runner import RunReport
    from core.jobs import JobQueue
    from core.jobs.cli import cli_owner, wait_for
    from core.templates.brand import load_brand_kit

    campaigns = CampaignStore(store_of(args))
    plan = None
    if args.resume:
        campaign = campaigns.get(args.resume)
    else:
        if not args.template:
            raise MosaicError("Name a template (see 'python -m core campaign --list-templates').")
        plan = plan_campaign(
            args.template,
            parse_field_args(args.field),
            engine=args.engine,
            model=args.model,
            name=args.name,
            seed=args.seed,
            channels=args.channel or None,
            seeds=args.seeds,
            steps=args.steps,
            size=args.size,
            library=args.library,
            label=args.label,
            brand_kit=load_brand_kit(campaigns.workspace),
            workspace=campaigns.workspace,
        )
        campaign = campaigns.create(plan)
    queue = JobQueue(campaigns.store)
    job = queue.submit(
        "campaign", {"campaign_id": campaign.id}, owner=cli_owner(), title=f"Campaign: {campaign.name}"[:200]
    )
    if args.no_wait:
        _print({"job": job.id, "campaign_id": campaign.id}, args.json,
               f"job {job.id} queued for campaign {campaign.id} (see 'python -m core jobs show {job.id}')")
        return 0
    job = wait_for(queue, job, show_progress=not args.json)
    known = {f.name for f in dataclasses.fields(RunReport)}
    report = RunReport(**{k: v for k, v in job.result.items() if k in known})
    result = export_campaign_result(campaign.id, report, args.out, campaigns=campaigns)
    result.plan = plan
    data = result.as_dict()
    text = f"campaign {data['campaign_id']}: {len(data['files'])} file(s) in {data['out_dir']}"
    if data.get("zip"):
        text += f"\nzip: {data['zip']}"
    text += "".join(f"\nnote: {n}" for n in data.get("notices", []))
    if data.get("elsewhere"):
        text += f"\nnote: {plural(data['elsewhere'], 'image')} still being made by another run of this campaign."
    _print(data, args.json, text)
    return 0


def _list_campaigns(args: argparse.Namespace) -> int:
    from core.campaigns import CampaignStore

    campaigns = CampaignStore(store_of(args))
    rows = []
    for campaign in campaigns.list():
        counts = campaigns.counts(campaign.id)
        rows.append(
            {
                "id": campaign.id,
                "name": campaign.name,
                "template": campaign.template,
                "status": campaigns.shown_status(campaign),
                "done": counts["done"],
                "failed": counts["failed"],
                "total": counts["total"],
                "created": campaign.created.isoformat(timespec="seconds"),
            }
        )
    text = "\n".join(
        f"{r['id']}  {r['status']:<12} {r['done']:>3}/{r['total']:<3} {r['created']}  {r['name']}" for r in rows
    )
    _print(rows, args.json, text or "No campaigns yet.")
    return 0


# ----------------------------------------------------------------------- workspaces
def workspace_of(args: argparse.Namespace) -> str:
    """The workspace named by ``--workspace`` (default: the default one), checked to exist."""
    from sqlalchemy import select

    from core import config
    from core.accounts.models import WorkspaceRecord
    from core.store import Store

    name = config.check_workspace_name(getattr(args, "workspace", None) or config.DEFAULT_WORKSPACE)
    with Store(recover=False).session() as session:
        if session.get(WorkspaceRecord, name) is None:
            names = sorted(session.scalars(select(WorkspaceRecord.name)))
            raise BadInputError(
                f"No workspace {name!r}. Workspaces: {', '.join(names)} (see 'python -m core workspaces list')."
            )
    return name


def store_of(args: argparse.Namespace, recover: bool = False) -> Store:
    """The store of the ``--workspace`` named on the command line."""
    from core.store import Store

    return Store(recover=recover, workspace=workspace_of(args))


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line plus where to look, not the whole usage text."""

    #: set by main(): the command line asked for --json, so errors come as {"error": ...} too
    json_errors = False

    def error(self, message: str) -> Any:
        text = f"{message}. See '{self.prog} --help'."
        if _Parser.json_errors:
            print(json.dumps({"error": text}))
        print(f"error: {text}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from core.engines.base import MAX_SEED
    from core.store.store import MAX_LIST

    parser = _Parser(prog="python -m core", description="Mosaic Studio command line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate images and save them in the gallery")
    gen.add_argument(
        "--engine", default="local-score", help="local-score, a machine (is, ls, els, bbels), sd, or trained"
    )
    gen.add_argument(
        "--seed", type=_whole_number(0, MAX_SEED), default=0, help="seed of the first image; image i uses seed + i"
    )
    gen.add_argument("--count", type=_whole_number(1), default=1)
    gen.add_argument(
        "--steps", type=_whole_number(1), default=None, help="sampling steps (default: 20, or the model's preset)"
    )
    gen.add_argument("--title", default="")
    gen.add_argument("--out", default=None, help="also copy the PNGs into this folder")
    gen.add_argument("--json", action="store_true")
    gen.add_argument("--no-wait", action="store_true", help="queue the job, print its id and return")
    local = gen.add_argument_group("local score engine")
    local.add_argument("--machine", default="bbels", help="local score machine (is, ls, els, bbels)")
    local.add_argument("--library", default="faces", help="reference library name (see 'libraries list')")
    local.add_argument("--size", type=_whole_number(1), default=32, help="image side in pixels (8 to 128)")
    local.add_argument("--preset", default="balanced", help="locality preset (patch-size schedule)")
    local.add_argument("--label", default=None, help="sample one class of the library, or 'random'")
    local.add_argument(
        "--approximate",
        action="store_true",
        help="faster, not exact: after the first steps each pixel only uses the closest groups of library "
        "patches (els, bbels on CPU; the library is indexed once) or each image its --top-k most used images",
    )
    local.add_argument(
        "--top-k",
        type=_whole_number(1),
        default=None,
        help="library images kept per image when a fast draft narrows the library (default: half of it, "
        "at least 40; at 128 px 4 %%, at least 16)",
    )
    local.add_argument(
        "--grid",
        choices=["uniform", "reference"],
        default="uniform",
        help="time grid: uniform (default) or reference (the authors': 19 steps at t = 0.95 … 0.05 on the "
        "20-step schedule, --steps is ignored)",
    )
    sd = gen.add_argument_group("Stable Diffusion engine (--engine sd)")
    sd.add_argument("--model", default=None, help="diffusers folder, .safetensors file, hub id or models-folder name")
    sd.add_argument("--model-config", default=None, help="config folder for a single-file checkpoint")
    sd.add_argument("--prompt", default="")
    sd.add_argument("--negative", default="", help="negative prompt")
    sd.add_argument("--task", choices=["txt2img", "img2img", "inpaint"], default=None)
    sd.add_argument("--init-image", default=None, help="starting image (img2img, inpaint)")
    sd.add_argument("--mask", default=None, help="inpainting mask: white = replace")
    sd.add_argument("--strength", type=float, default=0.75)
    sd.add_argument("--guidance", type=float, default=None)
    sd.add_argument("--scheduler", default=None)
    sd.add_argument("--width", type=_whole_number(1), default=None)
    sd.add_argument("--height", type=_whole_number(1), default=None)
    sd.add_argument("--speed", default="balanced", help="fast, balanced or quality")
    gen.set_defaults(func=cmd_generate)

    libs = sub.add_parser(
        "libraries",
        help="list, show, add to, verify or delete reference libraries; list or discard imports that stopped part way",
    )
    libs.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=["list", "show", "add", "verify", "delete", "stopped", "discard"],
    )
    libs.add_argument("name", nargs="?")
    libs.add_argument(
        "paths",
        nargs="*",
        help="with 'add': image files, .zip or .tar archives, folders, or a dataset: a .parquet file, a folder of "
        ".parquet files or hf://datasets/OWNER/NAME. A stopped import goes on when the same command runs again",
    )
    libs.add_argument("--title", default="")
    libs.add_argument(
        "--restart", action="store_true", help="with 'add': start a stopped import afresh instead of going on with it"
    )
    libs.add_argument(
        "--split", default=None, help="with a dataset: the split to import (default: its only one, or train)"
    )
    libs.add_argument(
        "--image-column", default=None, help="with a dataset: the column holding the pictures (default: its only one)"
    )
    libs.add_argument(
        "--label-column", default=None, help="with a dataset: the column giving labels (default: its class-name column)"
    )
    libs.add_argument("--json", action="store_true")
    libs.set_defaults(func=cmd_libraries)

    ana = sub.add_parser("analyze", help="which library patches an image borrows; originality and copy risk")
    ana.add_argument("image", help="PNG/JPEG/WebP image to check")
    ana.add_argument("--library", required=True, help="reference library to compare against")
    ana.add_argument("--space", choices=["pixel", "latent"], default="pixel")
    ana.add_argument("--model", default=None, help="Stable Diffusion model whose VAE defines the latent space")
    ana.add_argument(
        "--out",
        default=None,
        metavar="FOLDER",
        help="folder for the outputs (the source map PNG); default: exports/analyze in the data folder",
    )
    ana.add_argument("--source-map", default=None, help="write the source map PNG to this file instead")
    ana.add_argument("--json", action="store_true")
    ana.add_argument("--no-wait", action="store_true", help="queue the check, print its job id and return")
    ana.set_defaults(func=cmd_analyze)

    camp = sub.add_parser("campaign", help="generate a whole campaign from a template and export it")
    camp.add_argument("template", nargs="?", help="template id (see --list-templates)")
    camp.add_argument("--field", action="append", default=[], metavar="KEY=VALUE", help="fill a template field")
    camp.add_argument("--engine", default="local-score", help="local-score (offline) or sd")
    camp.add_argument("--model", default=None, help="Stable Diffusion model (with --engine sd)")
    camp.add_argument("--channel", action="append", default=[], help="only these channels (repeatable)")
    camp.add_argument("--seeds", type=int, default=None, help="variations per style and channel")
    camp.add_argument("--seed", type=int, default=None)
    camp.add_argument("--steps", type=int, default=None)
    camp.add_argument("--size", type=int, default=None, help="local score image side")
    camp.add_argument("--library", default=None, help="local score library")
    camp.add_argument("--label", default=None, help="local score class")
    camp.add_argument("--name", default=None, help="campaign name")
    camp.add_argument("--out", default=".", help="folder for the PNGs, manifest.csv, contact sheet and ZIP")
    camp.add_argument("--resume", default=None, metavar="CAMPAIGN_ID", help="finish an interrupted campaign")
    camp.add_argument("--list-templates", action="store_true")
    camp.add_argument("--list", action="store_true", help="list campaigns (newest first) with their status")
    camp.add_argument("--json", action="store_true")
    camp.add_argument("--no-wait", action="store_true", help="queue the job, print its id and return")
    camp.set_defaults(func=cmd_campaign)

    gal = sub.add_parser("gallery", help="list saved images")
    gal.add_argument(
        "--limit", type=_whole_number(1, MAX_LIST), default=50, help=f"show at most this many (1 to {MAX_LIST})"
    )
    gal.add_argument("--json", action="store_true")
    gal.set_defaults(func=cmd_gallery)

    from core.accounts.cli import add_parsers as add_account_parsers
    from core.jobs.cli import add_parsers as add_job_parsers

    add_job_parsers(sub)
    add_account_parsers(sub)
    for command in sub.choices.values():  # every command works in one workspace
        if "--workspace" not in command._option_string_actions:
            command.add_argument(
                "--workspace", default=None, metavar="NAME", help="the workspace to work in (default: 'default')"
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _Parser.json_errors = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a bad argument (argparse printed why)
        return stop.code if isinstance(stop.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    as_json = getattr(args, "json", False)
    try:
        return args.func(args)
    except MosaicError as err:
        return _fail(str(err), as_json, err.detail)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        print("Stopped.", file=sys.stderr)
        return 130
    except Exception as err:  # a bug or an unforeseen problem: one line, the details only with -v
        logger.debug("unexpected problem", exc_info=True)
        if args.verbose:
            traceback.print_exc()
        message = f"unexpected problem ({type(err).__name__}): {err}. Run with -v for details."
        return _fail(message, as_json)


def _fail(message: str, as_json: bool, detail: str | None = None) -> int:
    """Print ``message`` (and ``detail``, the technical part for whoever sets the studio up); exit status 2."""
    if as_json:
        print(json.dumps({"error": message, **({"detail": detail} if detail else {})}))
    print(f"error: {message}", file=sys.stderr)
    if detail:
        print(f"  detail: {detail}", file=sys.stderr)
    return 2
