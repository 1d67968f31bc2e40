"""Finding, loading and saving templates.

Built-in templates live in ``assets/templates/*.yaml`` (read-only, shared by every workspace). A
workspace's own templates live in ``config.workspace_dir(workspace)/templates/*.yaml``; they are
validated before they are written, and written atomically. The file name (without ``.yaml``) is
the template id. A user template may not take a built-in's id: duplicate the built-in under a new
id instead.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from core import config
from core.errors import BadInputError, MosaicError
from core.templates.schema import ID_PATTERN, Template, TemplateError

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "assets" / "templates"
MAX_TEMPLATE_BYTES = 256 * 1024


def user_templates_dir(workspace: str = config.DEFAULT_WORKSPACE) -> Path:
    path = config.workspace_dir(workspace) / "templates"
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_template(text: str | bytes, template_id: str, file: str = "", builtin: bool = False) -> Template:
    """Parse YAML text (safe loader only) and validate it. Errors name ``file`` and the field."""
    file = file or f"{template_id}.yaml"
    if isinstance(text, bytes):
        if len(text) > MAX_TEMPLATE_BYTES:
            raise TemplateError(file, "", f"the file is too large (at most {MAX_TEMPLATE_BYTES // 1024} KiB)")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise TemplateError(file, "", "the file is not UTF-8 text") from None
    if len(text) > MAX_TEMPLATE_BYTES:
        raise TemplateError(file, "", f"the file is too large (at most {MAX_TEMPLATE_BYTES // 1024} KiB)")
    if _deepest_bracket_nesting(text) > MAX_NESTING:
        raise TemplateError(file, "", f"it is nested too deeply (at most {MAX_NESTING} levels)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise TemplateError(file, "", f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise TemplateError(file, "", f"it is nested too deeply (at most {MAX_NESTING} levels)") from None
    problem = _unusable_value(data)
    if problem:
        raise TemplateError(file, problem[0], problem[1])
    try:
        return Template.from_dict(data, template_id, source=file, builtin=builtin)
    except TemplateError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as err:
        logger.debug("template %s refused", file, exc_info=True)
        raise TemplateError(file, "", f"it does not have the shape of a template ({type(err).__name__})") from None


#: a template is a few levels deep (template → formats → a field's options); anything far deeper is not one
MAX_NESTING = 32


def _deepest_bracket_nesting(text: str) -> int:
    """How deep ``[``/``{`` flow collections nest (a cheap guard before the YAML parser recurses)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _unusable_value(data: object) -> tuple[str, str] | None:
    """(field path, problem) for a value no template can hold: NaN or infinite numbers, or nesting too deep."""
    stack: list[tuple[object, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_NESTING:
            return where, f"it is nested too deeply (at most {MAX_NESTING} levels)"
        if isinstance(value, float) and not math.isfinite(value):
            return where, "numbers must be ordinary finite numbers (not .nan or .inf)"
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    return None


def load_template_file(path: Path, builtin: bool = False) -> Template:
    path = Path(path)
    shown = path.name if builtin else str(path)
    try:
        if not path.is_file():
            raise TemplateError(shown, "", "it is not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as err:
        raise TemplateError(shown, "", f"the file could not be read ({err.strerror or err})") from None
    return parse_template(data, path.stem, file=shown, builtin=builtin)


def dump_template(template: Template) -> str:
    """The YAML text of a template."""
    return yaml.safe_dump(template.to_dict(), sort_keys=False, allow_unicode=True, width=100)


class TemplateLibrary:
    """Built-in templates and one workspace's own. ``builtin_dir`` / ``user_dir`` are for tests."""

    def __init__(
        self,
        builtin_dir: Path | None = None,
        user_dir: Path | None = None,
        workspace: str = config.DEFAULT_WORKSPACE,
    ) -> None:
        self.workspace = config.check_workspace_name(workspace)
        self.builtin_dir = Path(builtin_dir) if builtin_dir else BUILTIN_DIR
        self.user_dir = Path(user_dir) if user_dir else user_templates_dir(workspace)
        self.user_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ reading
    def builtin_ids(self) -> list[str]:
        return sorted(p.stem for p in self.builtin_dir.glob("*.yaml"))

    def user_ids(self) -> list[str]:
        builtins = set(self.builtin_ids())
        return sorted(
            p.stem for p in self.user_dir.glob("*.yaml") if p.stem not in builtins and ID_PATTERN.fullmatch(p.stem)
        )

    def list(self) -> list[Template]:
        """Built-ins, then the user's templates. A broken user file is skipped (see :meth:`problems`)."""
        templates = [self.get(tid) for tid in self.builtin_ids()]
        for tid in self.user_ids():
            try:
                templates.append(self.get(tid))
            except MosaicError as err:
                logger.warning("skipping broken template: %s", err)
        return templates

    def problems(self) -> list[str]:
        """Messages for the user templates that cannot be loaded (to show next to the list)."""
        messages = []
        for tid in self.user_ids():
            try:
                self.get(tid)
            except MosaicError as err:
                messages.append(str(err))
        return messages

    def get(self, template_id: str) -> Template:
        """A template by id (built-ins first). Raises BadInputError if unknown, TemplateError if broken."""
        template_id = (template_id or "").strip()
        if template_id.endswith(".yaml"):
            template_id = template_id[: -len(".yaml")]
        if not ID_PATTERN.fullmatch(template_id):
            raise BadInputError(f"{template_id!r} is not a template id. Templates: {', '.join(self.ids())}.")
        builtin = self.builtin_dir / f"{template_id}.yaml"
        if builtin.is_file():
            return load_template_file(builtin, builtin=True)
        user = self.user_dir / f"{template_id}.yaml"
        if user.is_file():
            return load_template_file(user)
        raise BadInputError(f"No template {template_id!r}. Templates: {', '.join(self.ids())}.")

    def ids(self) -> list[str]:
        return self.builtin_ids() + self.user_ids()

    def is_builtin(self, template_id: str) -> bool:
        return (self.builtin_dir / f"{template_id}.yaml").is_file()

    # ------------------------------------------------------------------ writing
    def duplicate(self, template_id: str, new_id: str | None = None, name: str | None = None) -> Template:
        """A user copy of a template (not saved yet: edit it, then :meth:`save`)."""
        source = self.get(template_id)
        new_id = new_id or self.free_id(f"{source.id}-copy")
        data = source.to_dict()
        data["name"] = name or f"{source.name} (copy)"
        return Template.from_dict(data, new_id, source=f"{new_id}.yaml")

    def free_id(self, base: str) -> str:
        taken = set(self.ids())
        if base not in taken:
            return base
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"

    def save(self, template: Template | dict[str, Any], template_id: str | None = None) -> Template:
        """Validate and store a user template; returns it as read back. Built-ins are read-only."""
        if isinstance(template, Template):
            template_id = template_id or template.id
            data = template.to_dict()
        else:
            data = dict(template)
        if not template_id:
            raise BadInputError("A template needs an id (its file name) to be saved.")
        if self.is_builtin(template_id):
            raise BadInputError(
                f"{template_id!r} is a built-in template and cannot be changed. Duplicate it and save the copy."
            )
        file = f"{template_id}.yaml"
        checked = Template.from_dict(data, template_id, source=file)
        text = dump_template(checked)
        parse_template(text, template_id, file=file)  # what we write must read back
        path = self.user_dir / file
        fd, temp = tempfile.mkstemp(dir=self.user_dir, prefix=".tmp-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        logger.info("saved template %s", path)
        return self.get(template_id)

    def save_text(self, text: str, template_id: str) -> Template:
        """Validate YAML text (e.g. edited in the UI) and save it as a user template."""
        template = parse_template(text, template_id, file=f"{template_id}.yaml")
        return self.save(template, template_id)

    def delete(self, template_id: str) -> None:
        if self.is_builtin(template_id):
            raise BadInputError(f"{template_id!r} is a built-in template and cannot be deleted.")
        path = self.user_dir / f"{template_id}.yaml"
        if not ID_PATTERN.fullmatch(template_id) or not path.is_file():
            raise BadInputError(f"No user template {template_id!r}.")
        path.unlink()


def get_template(template: Template | str, workspace: str = config.DEFAULT_WORKSPACE) -> Template:
    """``template`` itself, or the template with that id (a built-in one, or one of ``workspace``)."""
    if isinstance(template, Template):
        return template
    return TemplateLibrary(workspace=workspace).get(template)
