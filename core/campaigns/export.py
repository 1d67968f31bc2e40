"""Exporting a campaign: PNGs (metadata embedded), a CSV manifest and an HTML contact sheet.

The export has this layout (inside a ZIP, or written into a folder)::

    images/001-square-minimal-s42.png   the stored PNG bytes, unchanged (settings in their text chunks)
    manifest.csv                        one row per image (columns: MANIFEST_COLUMNS)
    contact-sheet.html                  self-contained page; images referenced as images/...
    campaign.json                       the campaign, its fields and notices

Only items with an image are exported; rejected images can be left out.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.campaigns.models import CampaignItemRecord, CampaignRecord
from core.campaigns.plan import LOCAL_SCORE, Variation, library_title
from core.campaigns.store import CampaignStore
from core.errors import BadInputError
from core.store import GenerationRecord

logger = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
CONTACT_SHEET = "contact-sheet.html"
CAMPAIGN_JSON = "campaign.json"
IMAGES = "images"
#: one row per image. Words first (what a person reads), then clearly named figures for spreadsheets, then ids.
MANIFEST_COLUMNS = [
    "file",
    "channel",
    "size",
    "style",
    "seed",
    "guidance",
    "made_with",
    "prompt",
    "negative_prompt",
    "prompt_used",
    # the copy verdict in words (core.analyzer.verdict.in_words), as the card and the Originality check say it
    "copy_risk_words",
    "originality_words",
    "copy_risk_reason",
    # the same verdict as figures
    "copy_risk_level",  # low, medium or high
    "originality_score",  # 0 to 100
    "deciding_figure_percent",  # the figure that decided the copy risk, in % of the image (or % match)
    "largest_copied_piece_percent",
    "from_one_picture_percent",
    "checked_by",
    "star",
    "rejected",
    "notes",
    "engine_id",
    "model_id",
    "item_id",
    "generation_id",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ExportEntry:
    """One exported image."""

    file: str
    row: dict[str, Any]
    data: bytes


@dataclass
class CampaignExport:
    """Everything an export contains, before it is written. ``files`` maps archive paths to bytes."""

    campaign: CampaignRecord
    entries: list[ExportEntry]
    files: dict[str, bytes] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [e.row for e in self.entries]


def slug(text: str, limit: int = 40) -> str:
    value = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return value[:limit].strip("-") or "image"


def collect(
    campaign_id: str,
    campaigns: CampaignStore | None = None,
    include_rejected: bool = True,
    only_starred: bool = False,
) -> CampaignExport:
    """Gather the files of an export (reads the stored PNG bytes as they are)."""
    campaigns = campaigns or CampaignStore()
    campaign = campaigns.get(campaign_id)
    entries: list[ExportEntry] = []
    skipped: list[str] = []
    for item in campaigns.items(campaign_id):
        if item.rejected and not include_rejected or only_starred and not item.starred:
            continue
        record = campaigns.generation(item)
        if record is None:
            continue
        try:
            data = campaigns.store.image_bytes(record)
        except OSError as err:
            logger.warning("campaign %s: image of item %s is unreadable: %s", campaign_id, item.id, err)
            skipped.append(item.id)
            continue
        variation = Variation.from_dict(item.spec)
        stem = f"{item.position + 1:03d}-{slug(variation.channel, 12)}-{slug(variation.style)}-s{variation.seed}"
        name = f"{IMAGES}/{stem}.png"
        row = _row(name, item, variation, record)
        row["made_with"] = made_with(
            campaign.engine, variation.model, (variation.request or {}).get("library"), campaigns.workspace
        )
        entries.append(ExportEntry(file=name, row=row, data=data))
    if not entries:
        raise BadInputError("This campaign has no images to export yet. Generate it first.")
    export = CampaignExport(campaign=campaign, entries=entries, skipped=skipped)
    for entry in entries:
        export.files[entry.file] = entry.data
    export.files[MANIFEST] = manifest_csv(export.rows).encode("utf-8")
    export.files[CONTACT_SHEET] = contact_sheet(campaign, export.entries).encode("utf-8")
    info = campaign.as_dict() | {"images": len(entries), "files": [e.file for e in entries]}
    export.files[CAMPAIGN_JSON] = json.dumps(info, indent=2, default=str).encode("utf-8")
    return export


def made_with(engine: str, model: str | None, library: str | None, workspace: str) -> str:
    """How a campaign's images were made, in words ("Made offline from the Faces and backgrounds library")."""
    if engine == LOCAL_SCORE:
        if not library:
            return "Made offline from a picture library"
        return f"Made offline from the {library_title(library, workspace)} library"
    return f"Made with Stable Diffusion ({model_title(model)})" if model else "Made with Stable Diffusion"


def model_title(model: str | None) -> str:
    """A Stable Diffusion model's title in the studio's list, else the last part of its name."""
    if not model:
        return ""
    try:
        from core.engines.sd.catalog import curated

        entry = curated(model)
        if entry is not None:
            return entry.title
    except Exception as err:  # noqa: BLE001 - Stable Diffusion not installed: the plain name will do
        logger.debug("no model title for %s: %s", model, err)
    return Path(model.replace("\\", "/")).name or model


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def _row(name: str, item: CampaignItemRecord, variation: Variation, record: GenerationRecord) -> dict[str, Any]:
    return {
        "file": name,
        "channel": variation.channel,
        "channel_label": variation.channel_label,
        "size": f"{record.width}x{record.height}",
        "style": variation.style,
        "seed": record.seed,
        "guidance": "" if variation.guidance is None else f"{variation.guidance:g}",
        "prompt": variation.prompt,
        "negative_prompt": variation.negative_prompt,
        "prompt_used": "yes" if variation.prompt_used else "no",
        "star": "yes" if item.starred else "",
        "rejected": "yes" if item.rejected else "",
        "notes": item.notes or "",
        "engine_id": record.engine,
        "model_id": variation.model or "",
        "item_id": item.id,
        "generation_id": record.id,
        **verdict_columns(item),
    }


def verdict_columns(item: CampaignItemRecord) -> dict[str, Any]:
    """The copy verdict of a campaign image as manifest columns: words first, then figures."""
    from core.analyzer.verdict import in_words, originality_value
    from core.campaigns.analysis import item_verdict

    verdict = item_verdict(item)
    if verdict is not None:
        words = verdict.words
        return {
            "copy_risk_words": words.risk,
            "originality_words": words.originality,
            "copy_risk_reason": words.reason,
            "copy_risk_level": verdict.risk,
            "originality_score": str(verdict.originality),
            "deciding_figure_percent": _percent(verdict.headline_value),
            "largest_copied_piece_percent": _percent(verdict.largest_region),
            "from_one_picture_percent": _percent(verdict.top_share),
            "checked_by": "exact sources recorded while making it" if verdict.basis == "exact" else "library search",
        }
    # figures kept without a verdict (checked before verdicts existed), or not checked
    words = in_words(originality=item.originality, risk=item.copy_risk_label, value=item.copy_risk)
    score = originality_value(item.originality)
    return {
        "copy_risk_words": words.risk,
        "originality_words": words.originality,
        "copy_risk_reason": "",
        "copy_risk_level": words.level or (item.copy_risk_label or ""),
        "originality_score": "" if score is None else str(score),
        "deciding_figure_percent": _percent(item.copy_risk),
        "largest_copied_piece_percent": "",
        "from_one_picture_percent": "",
        "checked_by": "",
    }


def _cell(value: Any) -> str:
    """A CSV cell that spreadsheet apps will not run as a formula."""
    text = str(value)
    if text.startswith(_FORMULA_START) and not re.fullmatch(r"-?\d+(\.\d+)?", text):
        return "'" + text
    return text


def manifest_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k, "")) for k in MANIFEST_COLUMNS})
    return buffer.getvalue()


def read_manifest(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def contact_sheet(campaign: CampaignRecord, entries: list[ExportEntry]) -> str:
    """A self-contained HTML page (inline CSS, no scripts); images by relative path."""
    e = html.escape
    cards = []
    for entry in entries:
        row = entry.row
        width, height = (int(v) for v in row["size"].split("x"))
        scale = max(1, 192 // max(width, height)) if max(width, height) < 192 else 1
        shown_w, shown_h = min(width * scale, 320), round(min(width * scale, 320) * height / width)
        marks = ("★ " if row["star"] else "") + ("✕ rejected" if row["rejected"] else "")
        figures = []
        if row.get("copy_risk_words"):  # the copy verdict in words (core.analyzer.verdict.in_words)
            figures.append(f"<strong>{e(row['copy_risk_words'])}</strong>")
        if row.get("originality_words"):
            figures.append(e(row["originality_words"]))
        reason = f"<br><span class=reason>{e(row['copy_risk_reason'])}</span>" if row.get("copy_risk_reason") else ""
        prompt_label = "Prompt" if row["prompt_used"] == "yes" else "Brief (kept, not read when made offline)"
        cards.append(
            f'<figure class="card{" rejected" if row["rejected"] else ""}">'
            f'<a href="{e(entry.file)}"><img src="{e(entry.file)}" width="{shown_w}" height="{shown_h}" '
            f'alt="{e(row["channel"])} {e(row["style"])}" class="{"pixel" if scale > 1 else ""}"></a>'
            f"<figcaption><strong>{e(row.get('channel_label') or row['channel'])} · {e(row['style'])}</strong> "
            f"<span class=mark>{e(marks)}</span><br>"
            f"{e(row['size'])} px · seed {e(str(row['seed']))}"
            + (f" · guidance {e(row['guidance'])}" if row["guidance"] else "")
            + (f"<br>{' · '.join(figures)}{reason}" if figures else "")
            + f"<details><summary>{prompt_label}</summary><p>{e(row['prompt'])}</p>"
            + (f"<p><em>Negative:</em> {e(row['negative_prompt'])}</p>" if row["negative_prompt"] else "")
            + "</details>"
            + (f"<p class=notes>{e(row['notes'])}</p>" if row["notes"] else "")
            + f"<small>{e(entry.file)}</small></figcaption></figure>"
        )
    labels = {f.get("key"): f.get("label") for f in (campaign.template_snapshot or {}).get("fields", [])
              if isinstance(f, dict)}
    fields = "".join(
        f"<tr><th>{e(str(labels.get(k) or k))}</th>"
        f"<td>{e(', '.join(map(str, v)) if isinstance(v, list) else str(v))}</td></tr>"
        for k, v in (campaign.fields or {}).items()
        if v not in (None, "", [])
    )
    notices = "".join(f"<li>{e(n)}</li>" for n in campaign.notices or [])
    title = e(campaign.name or "Campaign")
    template = (campaign.template_snapshot or {}).get("name") or campaign.template
    how = entries[0].row.get("made_with") if entries else ""
    count = f"{len(entries)} image" + ("" if len(entries) == 1 else "s")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – contact sheet</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}}
h1{{margin:0 0 4px}} .meta{{color:#555;margin:0 0 12px}} table{{border-collapse:collapse;margin:8px 0}}
th,td{{text-align:left;padding:2px 12px 2px 0;vertical-align:top}} th{{color:#555;font-weight:600}}
.grid{{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px}}
.card{{margin:0;background:#fff;border:1px solid #ddd;border-radius:8px;padding:10px;width:330px}}
.card img{{display:block;max-width:100%;height:auto;background:#eee}} .card img.pixel{{image-rendering:pixelated}}
.card.rejected{{opacity:.45}} .mark{{color:#c90}} figcaption{{font-size:13px;margin-top:6px;line-height:1.4}}
details p{{margin:4px 0}} .reason{{color:#555}} .notes{{background:#fff8dc;padding:4px}} small{{color:#888}}
</style></head><body>
<h1>{title}</h1>
<p class="meta">Template “{e(str(template))}”{f" · {e(how)}" if how else ""}
 · created {e(campaign.created.strftime("%d %b %Y, %H:%M"))} · {count}</p>
{f"<table>{fields}</table>" if fields else ""}
{f"<ul>{notices}</ul>" if notices else ""}
<div class="grid">
{chr(10).join(cards)}
</div>
</body></html>
"""


def export_campaign_zip(
    campaign_id: str,
    dest: Path | str | None = None,
    campaigns: CampaignStore | None = None,
    include_rejected: bool = True,
    only_starred: bool = False,
) -> bytes:
    """The export as ZIP bytes (for a download button); also written atomically to ``dest`` if given."""
    export = collect(campaign_id, campaigns, include_rejected, only_starred)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in export.files.items():
            # PNGs are already compressed
            kind = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=kind)
    data = buffer.getvalue()
    if dest is not None:
        _atomic_write(Path(dest), data)
    return data


def export_campaign_dir(
    campaign_id: str,
    folder: Path | str,
    campaigns: CampaignStore | None = None,
    include_rejected: bool = True,
    only_starred: bool = False,
) -> list[Path]:
    """Write the export's files into ``folder`` (created). Returns the paths written."""
    export = collect(campaign_id, campaigns, include_rejected, only_starred)
    root = Path(folder)
    written = []
    for name, data in export.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, data)
        written.append(path)
    return written


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
