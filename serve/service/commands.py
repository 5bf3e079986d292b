"""``armscan serve``, ``armscan users ...``, ``armscan audit verify`` and ``armscan db upgrade``.

    armscan users create-admin --username chief           # asks for the password twice
    armscan users create --username olga --role officer --password-stdin < pw.txt
    armscan users api-key scanner-7 --name lane-7          # prints the key once
    armscan audit verify                                   # exit 1 if the chain was tampered with
    armscan serve --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from armscan.serve.service.settings import Settings

ROLES = ("officer", "analyst", "admin")  # as armscan.serve.service.security.ROLES (checked by a test)


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the service's subcommands on the main parser."""
    s = sub.add_parser("serve", help="run the officers' web service (settings: ARMSCAN_* variables or .env)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    u = sub.add_parser("users", help="manage accounts of the service")
    ua = u.add_subparsers(dest="action", required=True)
    for name, helptext in (("create-admin", "create an admin (the first one too)"), ("create", "create an account")):
        p = ua.add_parser(name, help=helptext)
        p.add_argument("--username", required=True)
        if name == "create":
            p.add_argument("--role", required=True, choices=ROLES)
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead of asking")
    k = ua.add_parser("api-key", help="create an API key for a user; it is printed once")
    k.add_argument("username")
    k.add_argument("--name", default="default", help="label, e.g. the scanner lane")
    ua.add_parser("list", help="list accounts")

    a = sub.add_parser("audit", help="check the audit log")
    aa = a.add_subparsers(dest="action", required=True)
    aa.add_parser("verify", help="recompute the hash chain; exit 1 if any line was changed or removed")

    d = sub.add_parser("db", help="database maintenance")
    da = d.add_subparsers(dest="action", required=True)
    da.add_parser("upgrade", help="apply migrations up to the newest")


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    from armscan.serve.service.db import make_engine, session_factory, upgrade

    engine = make_engine(settings.db_url)
    try:
        upgrade(engine)
        with session_factory(engine)() as db:
            yield db
    finally:
        engine.dispose()


def _password(from_stdin: bool) -> str:
    from armscan.serve.service import accounts

    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise accounts.AccountError("the two passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    """Run one of the service commands; returns the exit code."""
    from armscan.serve.service import accounts, audit
    from armscan.serve.service.db import make_engine, upgrade
    from armscan.serve.service.settings import get_settings

    settings = get_settings()
    if args.command == "serve":
        import uvicorn

        from armscan.serve.service.app import create_app

        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                    timeout_keep_alive=30, limit_concurrency=512)
        return 0
    if args.command == "db":
        engine = make_engine(settings.db_url)
        upgrade(engine)
        engine.dispose()
        print(f"database at the newest schema: {settings.db_url.split('@')[-1]}")
        return 0
    with _session(settings) as db:
        if args.command == "audit":
            report = audit.verify(db)
            for p in report.problems:
                print(f"TAMPERED: {p}")
            print(f"audit log: {report.entries} lines, {'chain intact' if report.ok else 'CHAIN BROKEN'}")
            return 0 if report.ok else 1
        try:
            return _users(db, args)
        except accounts.AccountError as exc:
            print(f"armscan: error: {exc}", file=sys.stderr)
            return 2


def _users(db: Session, args: argparse.Namespace) -> int:
    from armscan.serve.service import accounts
    if args.action == "list":
        from sqlalchemy import select

        from armscan.serve.service.tables import User

        for u in db.scalars(select(User).order_by(User.username)):
            print(f"{u.username:<24} {u.role:<8} {'active' if u.active else 'disabled'}")
        return 0
    if args.action == "api-key":
        row, key = accounts.create_api_key(db, args.username, args.name, actor="cli")
        db.commit()
        print(f"API key {row.id} for {row.user.username} ({row.name}); shown once, store it now:", file=sys.stderr)
        print(key)
        return 0
    role = "admin" if args.action == "create-admin" else args.role
    user = accounts.create_user(db, args.username, _password(args.password_stdin), role, actor="cli")
    db.commit()
    print(f"created {user.role} {user.username}")
    return 0
