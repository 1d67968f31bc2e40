"""Originality check, part 1: what to check, against which library, how (used by pages/analyze.py)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
from PIL import Image

from core.analyzer import AnalyzerSettings
from core.errors import MosaicError
from core.html import md
from core.images import load_image
from core.libraries import LibraryManager
from core.libraries.records import LibraryInfo
from core.store import Store
from core.words import plural
from pages.parts.messages import show_problem
from pages.parts.shared import with_requested

logger = logging.getLogger(__name__)

SAVED, UPLOAD = "saved", "upload"
MODES = {SAVED: "A saved image", UPLOAD: "A picture from my computer"}
ENGINE_NAMES = {"local-score": "Mosaic", "sd": "Stable Diffusion"}
SPACES = {
    "pixel": "Pixels — what people see (recommended)",
    "latent": "Image-model view — how a Stable Diffusion model sees it",
}
#: how thorough the check is: label -> analyzer settings (None = the defaults in docs/originality.md)
DETAILS: dict[str, AnalyzerSettings | None] = {
    "Standard": None,
    "Quick (less detail, about twice as fast)": AnalyzerSettings(work_size=64, scales=(8, 16)),
}
FALLBACK_LIBRARY = "photos"
LAST_UPLOAD = "_analyze_last_upload"


@dataclass
class Subject:
    """The image to check: a saved record or an uploaded picture."""

    key: str  # cache key part: "record:<id>" or "upload:<sha256>"
    image: Image.Image
    label: str
    record: Any = None  # GenerationRecord for saved images
    notices: list[str] = field(default_factory=list)
    upload: str | None = None  # the studio's copy of an uploaded picture (core.jobs.requests.save_upload_image)


def decode_upload(data: bytes, name: str) -> Subject:
    """An uploaded file as a subject; unreadable files raise a ``BadInputError`` naming the file."""
    loaded = load_image(data, name)
    digest = hashlib.sha256(data).hexdigest()[:16]
    return Subject(
        key=f"upload:{digest}", image=loaded.image, label=name or "uploaded picture", notices=list(loaded.notices)
    )


#: characters of an image's title in the image picker (it must fit a phone's screen; the whole title is shown below)
LABEL_TITLE = 20


def _record_label(record: Any, short: bool = True) -> str:
    """Its title and when it was made; ``short``: the start of its title, to fit a phone's screen."""
    what = record.title or ENGINE_NAMES.get(record.engine, record.engine)
    if short and len(what) > LABEL_TITLE:
        what = what[: LABEL_TITLE - 1].rstrip(" ·-") + "…"
    return f"{what} · {record.created_at:%d %b %H:%M}"


def _record_details(record: Any) -> str:
    """The rest of what identifies an image (plain text): its whole title, library and size."""
    what = record.title or ENGINE_NAMES.get(record.engine, record.engine)
    library = f" · made from “{_library_title(record.library)}”" if record.library else ""
    return f"{what}{library} · {record.width}×{record.height} px"


def _library_title(name: str) -> str:
    """The title people know a library by; its name when it cannot be read."""
    from pages.parts.shared import get_libraries

    try:
        return get_libraries().get(name).title
    except MosaicError:
        return name


def _follow_requested_image() -> str | None:
    """An image asked for by another page (query parameter or session state) selects 'saved' mode once."""
    wanted = st.query_params.get("id") or st.session_state.get("analyze_id")
    if wanted and wanted != st.session_state.get("_analyze_seen"):
        st.session_state["_analyze_seen"] = wanted
        st.session_state["analyze_mode"] = SAVED
        st.session_state["analyze_record"] = wanted
    return wanted


def choose_subject(store: Store) -> Subject | None:
    """Draw 'what to check'; return the subject, or None (with a message) when there is nothing to check."""
    wanted = _follow_requested_image()
    records = store.list(limit=200)
    if not with_requested(store, records, wanted):
        st.warning("The image you asked for no longer exists; choose another one below.")
        if st.session_state.get("analyze_record") == wanted:
            del st.session_state["analyze_record"]
    ids = [r.id for r in records]
    if "analyze_mode" not in st.session_state:
        st.session_state["analyze_mode"] = SAVED
    mode = st.radio(
        "What do you want to check?", list(MODES), format_func=MODES.get, horizontal=True, key="analyze_mode"
    )
    if mode == UPLOAD:
        return _upload_subject()
    if not records:
        st.info(
            "You have no saved images yet. Make one on the Generate page, or choose "
            "**A picture from my computer** above to check any picture."
        )
        st.page_link("pages/generate.py", label="Generate images", icon=":material/auto_awesome:")
        return None
    by_id = {r.id: r for r in records}
    if st.session_state.get("analyze_record") not in by_id:  # first visit, or back from another page
        st.session_state["analyze_record"] = wanted if wanted in by_id else ids[0]
    choice = st.selectbox(
        "Image",
        ids,
        format_func=lambda i: _record_label(by_id[i]),
        key="analyze_record",
        help="Your most recent images, newest first.",
    )
    st.caption(md(_record_details(by_id[choice])))
    if st.query_params.get("id") != choice:
        st.query_params["id"] = choice
    st.session_state["analyze_id"] = choice
    st.session_state["_analyze_seen"] = choice
    record = by_id[choice]
    try:
        image = store.image(record)
    except OSError as err:
        show_problem("The picture file of this image could not be read. Choose another image.", detail=str(err))
        return None
    return Subject(key=f"record:{record.id}", image=image, label=_record_label(record, short=False), record=record)


def _upload_subject() -> Subject | None:
    upload = st.file_uploader(
        "Picture to check",
        key="analyze_upload",
        help="PNG, JPEG, WebP, GIF, BMP, TIFF or AVIF, up to 100 MB. The picture is kept in the studio only for "
        "its check and is not shared.",
    )
    if upload is None:
        last = _last_upload()
        if last is not None:
            return last
        st.info("Choose a picture from your computer (PNG or JPEG work best) to check how original it is.")
        return None
    try:
        return decode_upload(upload.getvalue(), upload.name)
    except MosaicError as err:
        show_problem(f"This picture cannot be checked. {err}", detail=err.detail)
        return None


def _last_upload() -> Subject | None:
    """The picture of this browser's last check of an upload (the file picker forgets it when the page is left)."""
    last = st.session_state.get(LAST_UPLOAD)
    if not isinstance(last, dict):
        return None
    from core.analyzer.jobs import subject_image
    from pages.parts.shared import get_store

    try:
        image = subject_image({"upload": last.get("upload")}, get_store())
    except MosaicError:
        st.session_state.pop(LAST_UPLOAD, None)
        return None
    st.caption(f":material/history: Your last picture, {md(last.get('label') or 'uploaded')}. "
               "Choose another picture above to check it instead.")
    return Subject(key=str(last.get("key")), image=image, label=str(last.get("label") or "uploaded picture"),
                   upload=str(last.get("upload")))


def upload_name(subject: Subject) -> str:
    """The studio's copy of an uploaded subject (saved once per picture, so one click stays one job)."""
    if subject.upload:
        return subject.upload
    saved: dict = st.session_state.setdefault("_analyze_uploads", {})
    if subject.key not in saved:
        from core.jobs.requests import save_upload_image

        saved[subject.key] = save_upload_image(subject.image)
    subject.upload = saved[subject.key]
    return subject.upload


def remember_upload(subject: Subject) -> None:
    """Keep an uploaded subject for when the page is opened again."""
    st.session_state[LAST_UPLOAD] = {"key": subject.key, "upload": upload_name(subject), "label": subject.label}


def restore_last_check(job: Any) -> None:
    """On opening the page, put back the choices of this browser's latest check, so its progress or result shows.

    Only when the page's own choices are not on screen yet (first visit, or back from another page), and
    never over an image another page asked for.
    """
    if job is None or "analyze_detail" in st.session_state:
        return
    params = job.params or {}
    page = params.get("page") or {}
    subject_key = page.get("subject")
    wanted = st.query_params.get("id")
    if params.get("record_id"):
        record_id = str(params["record_id"])
        if wanted and wanted != record_id:
            return
        st.session_state.update(
            {"analyze_mode": SAVED, "analyze_record": record_id, "analyze_id": record_id, "_analyze_seen": record_id}
        )
    elif params.get("upload") and subject_key and not wanted:
        st.session_state["analyze_mode"] = UPLOAD
        st.session_state[LAST_UPLOAD] = {"key": subject_key, "upload": params["upload"], "label": params.get("label")}
    else:
        return
    st.session_state["_analyze_library_for"] = subject_key
    st.session_state["analyze_library"] = params.get("library")
    if params.get("space") in SPACES:
        st.session_state["analyze_space"] = params["space"]
    if page.get("detail") in DETAILS:
        st.session_state["analyze_detail"] = page["detail"]
    if params.get("model"):
        st.session_state["analyze_model"] = params["model"]


def _brand_library() -> tuple[str | None, str | None]:
    """(the brand kit's library or None, a problem to mention or None)."""
    try:
        from core.templates import load_brand_kit
        from pages.parts.auth import current_workspace

        return load_brand_kit(current_workspace()).library, None
    except MosaicError as err:
        logger.warning("brand kit not readable: %s", err)
        return None, f"Your brand kit could not be read ({err}), so its library is not the default."


def default_library(subject: Subject, infos: dict[str, LibraryInfo]) -> tuple[str, str | None]:
    """The library to preselect, and a note for the person (or None)."""
    brand, problem = _brand_library()
    if brand:
        if brand in infos:
            return brand, None
        problem = f"Your brand kit's library '{brand}' does not exist any more; choose another one."
    record = subject.record
    if record is not None and record.engine == "local-score" and record.library in infos:
        return record.library, problem
    users = [name for name, info in infos.items() if info.kind == "user"]
    if users:
        return users[0], problem
    return (FALLBACK_LIBRARY if FALLBACK_LIBRARY in infos else next(iter(infos))), problem


def _library_label(info: LibraryInfo) -> str:
    if info.kind == "user":
        if not info.count:
            return f"{info.title} — empty"
        return f"{info.title} — your library, {plural(info.count, 'picture')}"
    count = plural(info.count, "picture") if info.built else "prepared on first use"
    return f"{info.title} — built-in, {count}"


def choose_library(subject: Subject, libraries: LibraryManager) -> LibraryInfo | None:
    """Draw the reference library picker (default chosen per image); return the chosen library."""
    infos = {info.name: info for info in libraries.list()}
    if not infos:
        st.error("There are no reference libraries. Add one on the Libraries page.")
        return None
    default, note = default_library(subject, infos)
    if (
        st.session_state.get("_analyze_library_for") != subject.key
        or st.session_state.get("analyze_library") not in infos
    ):
        st.session_state["_analyze_library_for"] = subject.key
        st.session_state["analyze_library"] = default
    name = st.selectbox(
        "Compare with this library",
        list(infos),
        format_func=lambda n: _library_label(infos[n]),
        key="analyze_library",
        help="The pictures your image might borrow from: usually your brand's own library. "
        "Add libraries on the Libraries page.",
    )
    if note:
        st.caption(f":material/info: {md(note)}")
    return infos[name]


@dataclass
class Method:
    """How to compare: pixel or latent space, the model for latents, the level of detail."""

    space: str = "pixel"
    model: str | None = None
    detail: str = "Standard"
    problem: str | None = None  # why the check cannot run (shown instead of running)
    problem_detail: str | None = None  # the technical reason, for whoever sets up the studio

    @property
    def settings(self) -> AnalyzerSettings | None:
        return DETAILS.get(self.detail)

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.space, self.model, self.detail)


def choose_method() -> Method:
    """The 'More options' expander: comparison space, model for latents, detail."""
    with st.expander("More options"):
        space = st.radio(
            "Compare",
            list(SPACES),
            format_func=SPACES.get,
            key="analyze_space",
            help="Pixels suit almost every check. The image-model view compares the way a "
            "Stable Diffusion model encodes pictures; it needs a model on this computer.",
        )
        detail = st.radio(
            "Detail",
            list(DETAILS),
            key="analyze_detail",
            horizontal=True,
            help="Standard looks at the image at 128 px; Quick at 64 px.",
        )
        method = Method(space=space, detail=detail)
        if space == "latent":
            try:
                from core.engines.sd import list_models

                models = [m for m in list_models() if m.available]
            except Exception as err:  # noqa: BLE001 - a broken models folder must not break the page
                logger.exception("listing models failed")
                models = []
                method.problem = (
                    "The image-model view is not available in this studio right now: compare pixels instead."
                )
                method.problem_detail = f"{type(err).__name__}: {err}"
            if not models and method.problem is None:
                method.problem = (
                    "The image-model view needs a Stable Diffusion model on this computer, and none is "
                    "downloaded yet. Download one from the Generate page (Stable Diffusion), or compare pixels."
                )
            if models:
                titles = {m.id: m.title for m in models}
                if st.session_state.get("analyze_model") not in titles:
                    st.session_state.pop("analyze_model", None)
                method.model = st.selectbox("Image model", list(titles), format_func=titles.get, key="analyze_model")
    return method
