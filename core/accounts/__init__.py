"""Sign-in and workspaces: accounts (argon2 password hashes), sessions, workspaces and roles.

``Accounts`` keeps people, sessions and workspaces in the store's database; ``Access`` says what a
signed-in person may do in one workspace (viewer: look and export; editor: also generate and edit;
admin: also manage members and delete).
"""

from core.accounts.access import ACTIONS, JOB_ACTIONS, Access, PermissionDenied
from core.accounts.accounts import Accounts, SignInError, SignInThrottled, check_user_name
from core.accounts.models import (
    ADMIN,
    DEFAULT_WORKSPACE,
    EDITOR,
    ROLES,
    VIEWER,
    MembershipRecord,
    UserRecord,
    WorkspaceRecord,
)

__all__ = [
    "ACTIONS",
    "ADMIN",
    "DEFAULT_WORKSPACE",
    "EDITOR",
    "JOB_ACTIONS",
    "ROLES",
    "VIEWER",
    "Access",
    "Accounts",
    "MembershipRecord",
    "PermissionDenied",
    "SignInError",
    "SignInThrottled",
    "UserRecord",
    "WorkspaceRecord",
    "check_user_name",
]
