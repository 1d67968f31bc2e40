"""Workspaces and roles: who may do what, and a workspace one does not belong to reads as missing."""

from __future__ import annotations

import pytest

from core.accounts import Accounts, PermissionDenied
from core.errors import BadInputError

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts() -> Accounts:
    accounts = Accounts()
    accounts.add_user("root", PASSWORD)  # the studio administrator
    accounts.add_workspace("acme", title="Acme Shoes")
    accounts.add_workspace("globex")
    for name, role in (("vic", "viewer"), ("eda", "editor"), ("ada", "admin")):
        accounts.add_user(name, PASSWORD, role=role, workspace="acme")
    return accounts


def test_roles_allow_what_they_say(accounts):
    viewer, editor, admin = (accounts.access(accounts.get_user(n), "acme") for n in ("vic", "eda", "ada"))
    for action in ("view", "export"):
        assert viewer.can(action) and editor.can(action) and admin.can(action)
    for action in ("generate", "edit"):
        assert not viewer.can(action) and editor.can(action) and admin.can(action)
    for action in ("delete", "members"):
        assert not viewer.can(action) and not editor.can(action) and admin.can(action)
    with pytest.raises(PermissionDenied, match="viewer of workspace 'acme'.*editor role"):
        viewer.require("generate")
    with pytest.raises(PermissionDenied, match="admin role"):
        editor.require("delete")
    with pytest.raises(PermissionDenied):
        viewer.require_job("campaign")
    with pytest.raises(PermissionDenied):
        viewer.require_job("library-import")
    editor.require_job("generate")
    admin.require("members")


def test_a_workspace_one_does_not_belong_to_reads_like_a_missing_one(accounts):
    eda = accounts.get_user("eda")
    with pytest.raises(PermissionDenied) as other:
        accounts.access(eda, "globex")
    with pytest.raises(PermissionDenied) as missing:
        accounts.access(eda, "no-such-place")
    assert str(other.value).replace("globex", "X") == str(missing.value).replace("no-such-place", "X")
    assert [w.name for w, _ in accounts.workspaces_of(eda)] == ["acme"]
    root = accounts.get_user("root")  # a studio administrator may open every workspace
    assert {w.name for w, _ in accounts.workspaces_of(root)} == {"acme", "default", "globex"}
    assert accounts.access(root, "globex").can("delete")


def test_members_are_added_changed_and_removed_and_a_workspace_keeps_an_admin(accounts):
    accounts.set_member("globex", "eda", "viewer")
    assert accounts.access(accounts.get_user("eda"), "globex").role == "viewer"
    accounts.set_member("globex", "eda", "admin")
    with pytest.raises(BadInputError, match="needs an admin"):
        accounts.remove_member("globex", "eda")
    with pytest.raises(BadInputError, match="needs an admin"):
        accounts.set_member("globex", "eda", "editor")
    accounts.set_member("globex", "vic", "admin")
    accounts.remove_member("globex", "eda")
    assert [u.name for u, _ in accounts.members("globex")] == ["vic"]
    with pytest.raises(BadInputError, match="not a role"):
        accounts.set_member("globex", "eda", "owner")
    with pytest.raises(BadInputError, match="No account"):
        accounts.set_member("globex", "nobody", "viewer")
    with pytest.raises(BadInputError, match="already"):
        accounts.add_workspace("acme")
    with pytest.raises(BadInputError, match="not a valid workspace name"):
        accounts.add_workspace("Acme Shoes")
    accounts.disable_user("vic")
    assert accounts.workspaces_of(accounts.get_user("vic")) == []
