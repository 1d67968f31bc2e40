"""``python -m core users`` and ``workspaces``: passwords from standard input, JSON, clear errors, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from core.accounts import Accounts

SECRET = "correct horse battery"


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    verbose = ["-v"] if "-v" in args else []  # -v (log everything) goes before the command
    args = tuple(a for a in args if a != "-v")
    return subprocess.run(
        [sys.executable, "-m", "core", *verbose, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def test_users_and_workspaces_from_the_command_line():
    first = run("users", "add", "root", "--json", "-v", stdin=SECRET + "\n")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["studio_admin"] is True  # the first account administers the studio
    assert run("workspaces", "add", "acme", "--title", "Acme Shoes").returncode == 0
    added = run("users", "add", "sam", "--role", "editor", "--workspace", "acme", "--json", "-v", stdin=SECRET)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["workspaces"] == {"acme": "editor"}
    listed = json.loads(run("users", "list", "--json").stdout)
    assert [u["name"] for u in listed] == ["root", "sam"]
    assert all("hash" not in key for user in listed for key in user)
    members = json.loads(run("workspaces", "members", "acme", "--json").stdout)
    assert members == [{"name": "sam", "email": None, "role": "editor", "disabled": False}]
    changed = run("users", "passwd", "sam", "-v", stdin="a brand new secret\n")
    assert changed.returncode == 0, changed.stderr
    assert Accounts().authenticate("sam", "a brand new secret").name == "sam"
    assert run("users", "disable", "sam").returncode == 0
    assert json.loads(run("users", "list", "--json").stdout)[1]["disabled"] is True
    for result in (first, added, changed):  # the passwords are never printed or logged
        for secret in (SECRET, "a brand new secret"):
            assert secret not in result.stdout + result.stderr


def test_errors_are_one_line_with_exit_status_two():
    assert run("users", "add", "root", stdin=SECRET).returncode == 0
    cases = [
        (("users", "add", "sam", "--json"), "short", "at least 8"),
        (("users", "add", "root", "--json"), SECRET, "already an account"),
        (("users", "add", "sam", "--role", "editor", "--workspace", "nowhere", "--json"), SECRET, "No workspace"),
        (("users", "passwd", "nobody", "--json"), SECRET, "No account"),
        (("workspaces", "members", "nowhere", "--json"), "", "No workspace"),
        (("workspaces", "add", "Not A Name", "--json"), "", "not a valid workspace name"),
        (("gallery", "--workspace", "nowhere", "--json"), "", "No workspace"),
    ]
    for args, stdin, words in cases:
        result = run(*args, stdin=stdin)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert words in json.loads(result.stdout)["error"], (args, result.stdout)
        assert "Traceback" not in result.stderr
        assert SECRET not in result.stdout + result.stderr
