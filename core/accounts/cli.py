"""``python -m core users …`` and ``python -m core workspaces …``: accounts and workspaces from the shell.

The command line is run by the server's own operator (who can read the data folder anyway), so it
needs no sign-in; passwords are read from standard input when it is not a terminal (first line),
else asked twice without echo. A password is never printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from core.accounts.accounts import Accounts
from core.accounts.models import ROLES, UserRecord
from core.errors import BadInputError


def _print(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _user_dict(user: UserRecord, accounts: Accounts) -> dict[str, Any]:
    return {
        "name": user.name,
        "email": user.email,
        "studio_admin": bool(user.is_admin),
        "disabled": bool(user.disabled),
        "sign_in": "password" if user.password_hash else "identity provider",
        "created_at": user.created_at.isoformat(timespec="seconds") if user.created_at else None,
        "last_login_at": user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else None,
        "workspaces": {workspace.name: role for workspace, role in accounts.workspaces_of(user)},
    }


def read_password(prompt: str = "Password: ") -> str:
    """A password from standard input (first line) when it is not a terminal, else typed twice unseen."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise BadInputError("No password on standard input: give it as the first line.")
        return line.rstrip("\r\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("The same password again: ") != first:
        raise BadInputError("The two passwords differ; nothing was changed.")
    return first


def cmd_users(args: argparse.Namespace) -> int:
    accounts = Accounts()
    action = args.action
    if action == "list":
        data = [_user_dict(u, accounts) for u in accounts.list_users()]
        lines = [
            f"{d['name']:<20} {'admin' if d['studio_admin'] else '':<6} {'disabled' if d['disabled'] else 'active':<9}"
            f"{', '.join(f'{w}:{r}' for w, r in d['workspaces'].items())}"
            for d in data
        ]
        _print(data, args.json, "\n".join(lines) or "No accounts yet.")
        return 0
    if not args.name:
        raise BadInputError(f"'users {action}' needs a sign-in name.")
    if action == "add":
        password = None if args.no_password else read_password()
        if args.no_password and not args.email:
            raise BadInputError("An account without password signs in through the identity provider: give --email.")
        user = accounts.add_user(
            args.name,
            password,
            email=args.email,
            role=args.role,
            workspace=args.workspace,
            is_admin=args.admin,
        )
        data = _user_dict(user, accounts)
        _print(data, args.json, f"added {user.name}" + (" (studio administrator)" if user.is_admin else ""))
        return 0
    if action == "passwd":
        user = accounts.set_password(args.name, read_password("New password: "))
        _print(_user_dict(user, accounts), args.json, f"changed the password of {user.name}")
        return 0
    if action == "disable":
        user = accounts.disable_user(args.name)
        _print(_user_dict(user, accounts), args.json, f"disabled {user.name} (everything they made is kept)")
        return 0
    if action == "enable":
        user = accounts.enable_user(args.name)
        _print(_user_dict(user, accounts), args.json, f"enabled {user.name}")
        return 0
    raise BadInputError(f"Unknown action {action!r}.")


def cmd_workspaces(args: argparse.Namespace) -> int:
    accounts = Accounts()
    if args.action == "list":
        data = [{"name": w.name, "title": w.title} for w in accounts.list_workspaces()]
        _print(data, args.json, "\n".join(f"{d['name']:<24} {d['title']}" for d in data))
        return 0
    if not args.name:
        raise BadInputError(f"'workspaces {args.action}' needs a workspace name.")
    if args.action == "add":
        workspace = accounts.add_workspace(args.name, title=args.title or "")
        _print({"name": workspace.name, "title": workspace.title}, args.json, f"added workspace {workspace.name}")
        return 0
    if args.action == "members":
        if args.add and args.remove:
            raise BadInputError("Give --add or --remove, not both.")
        if args.add:
            if not args.role:
                raise BadInputError(f"Give the role with --role ({', '.join(ROLES)}).")
            accounts.set_member(args.name, args.add, args.role)
        elif args.remove:
            accounts.remove_member(args.name, args.remove)
        data = [{"name": u.name, "email": u.email, "role": role, "disabled": bool(u.disabled)}
                for u, role in accounts.members(args.name)]
        _print(data, args.json, "\n".join(f"{d['name']:<20} {d['role']}" for d in data) or "No members.")
        return 0
    raise BadInputError(f"Unknown action {args.action!r}.")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="add, list, disable, enable people, or change a password")
    users.add_argument("action", nargs="?", default="list", choices=["list", "add", "disable", "enable", "passwd"])
    users.add_argument("name", nargs="?", help="sign-in name")
    users.add_argument("--role", choices=ROLES, default=None, help="with 'add': role in --workspace")
    users.add_argument("--workspace", default=None, metavar="NAME", help="with 'add' and --role (default: 'default')")
    users.add_argument("--email", default=None, help="with 'add': matched by company sign-in (single sign-on)")
    users.add_argument("--admin", action="store_true", help="with 'add': a studio administrator")
    users.add_argument("--no-password", action="store_true", help="with 'add': signs in only by single sign-on")
    users.add_argument("--json", action="store_true")
    users.set_defaults(func=cmd_users)

    spaces = sub.add_parser("workspaces", help="add or list workspaces, list or change their members")
    spaces.add_argument("action", nargs="?", default="list", choices=["list", "add", "members"])
    spaces.add_argument("name", nargs="?", help="workspace name")
    spaces.add_argument("--title", default=None, help="with 'add': the name people see")
    spaces.add_argument("--add", default=None, metavar="USER", help="with 'members': add USER (or change the role)")
    spaces.add_argument("--remove", default=None, metavar="USER", help="with 'members': remove USER")
    spaces.add_argument("--role", choices=ROLES, default=None, help="with --add")
    spaces.add_argument("--json", action="store_true")
    spaces.set_defaults(func=cmd_workspaces)
