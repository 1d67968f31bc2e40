"""What a person may do in a workspace: one rule for the pages, the job queue and the commands."""

from __future__ import annotations

from dataclasses import dataclass

from core.accounts.models import ADMIN, EDITOR, VIEWER
from core.errors import BadInputError

#: what each role may do; each role may also do everything of the roles before it
ACTIONS: dict[str, tuple[str, ...]] = {
    VIEWER: ("view", "export"),
    EDITOR: ("view", "export", "generate", "edit"),
    ADMIN: ("view", "export", "generate", "edit", "delete", "members"),
}

#: the action each kind of job needs
JOB_ACTIONS: dict[str, str] = {
    "generate": "generate",
    "campaign": "generate",
    "analyze": "generate",
    "lab": "generate",
    "library-import": "edit",
}

_WORDS = {
    "view": "look",
    "export": "export",
    "generate": "make images or run checks",
    "edit": "change libraries, templates, the brand kit or campaigns",
    "delete": "delete",
    "members": "manage members",
}
_NEEDED = {"view": VIEWER, "export": VIEWER, "generate": EDITOR, "edit": EDITOR, "delete": ADMIN, "members": ADMIN}


class PermissionDenied(BadInputError):
    """The person's role in the workspace does not allow this."""


@dataclass(frozen=True)
class Access:
    """A signed-in person in one workspace, with their role there."""

    user_id: str
    user_name: str
    workspace: str
    role: str
    #: a studio administrator (manages people and workspaces)
    is_admin: bool = False

    def can(self, action: str) -> bool:
        if action not in _NEEDED:
            raise ValueError(f"unknown action {action!r}")
        return action in ACTIONS.get(self.role, ())

    def require(self, action: str) -> None:
        """Nothing when allowed; else :class:`PermissionDenied` in plain words."""
        if self.can(action):
            return
        needed = _NEEDED[action]
        allowed = " and ".join(_WORDS[a] for a in ACTIONS.get(self.role, ()) if a in ("view", "export", "generate"))
        raise PermissionDenied(
            f"As {_article(self.role)} {self.role} of workspace '{self.workspace}' you can {allowed or 'look'}, "
            f"but not {_WORDS[action]}. Ask a workspace admin for the {needed} role."
        )

    def require_job(self, kind: str) -> None:
        """Nothing when the role may submit a job of ``kind``; else :class:`PermissionDenied`."""
        self.require(JOB_ACTIONS.get(kind, "generate"))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
