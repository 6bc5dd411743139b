"""`chunkscope keys` and `chunkscope audit`: operator commands that work on the data dir.

They read the same --data-dir / --api-keys-file / --audit-log settings (and CHUNKSCOPE_*
variables) as `chunkscope serve`, so a running server picks up key changes within a second.
Key changes are written to the audit log as done by "cli:<user>".
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from chunkscope.audit import AuditLog, parse_time
from chunkscope.auth import ROLES, KeyFile, KeyFileError, read_key_file

_ENV = "CHUNKSCOPE_"


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    data_dir = Path(args.data_dir or os.environ.get(_ENV + "DATA_DIR", "./data"))
    keys = args.api_keys_file or os.environ.get(_ENV + "API_KEYS_FILE", "")
    audit = args.audit_log or os.environ.get(_ENV + "AUDIT_LOG", "")
    return (
        Path(keys) if keys else data_dir / "keys.json",
        Path(audit) if audit else data_dir / "audit.jsonl",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="the server's data dir [env CHUNKSCOPE_DATA_DIR]")
    parser.add_argument("--api-keys-file", help="default <data-dir>/keys.json")
    parser.add_argument("--audit-log", help="default <data-dir>/audit.jsonl")


def _missing(what: str, path: Path) -> str:
    """Says that `path` does not exist, and whether its directory (the data dir) does."""
    where = f"no {what} at {path}"
    if not path.parent.exists():
        where += f" (the directory {path.parent} does not exist: check --data-dir)"
    return where


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def keys_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chunkscope keys", description="Manage API keys.")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key; it is printed once, on the last line")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default="", help="who or what the key is for")
    _common(create)
    listing = sub.add_parser("list", help="list keys (ids and roles, never the keys)")
    listing.add_argument("--json", action="store_true")
    _common(listing)
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    _common(revoke)
    args = parser.parse_args(argv)

    keys_path, audit_path = _paths(args)
    try:
        return _keys_action(args, keys_path, audit_path)
    except KeyFileError as exc:
        print(f"chunkscope keys: {exc}", file=sys.stderr)
        return 1


def _keys_action(args: argparse.Namespace, keys_path: Path, audit_path: Path) -> int:
    keys, audit = KeyFile(keys_path), AuditLog(audit_path)
    actor = f"cli:{getpass.getuser()}"
    if args.action == "create":
        key, record = keys.create(args.role, args.name)
        summary = {"id": record.id, "role": record.role, "name": record.name}
        audit.record(method="keys/create", outcome="OK", key_id=actor, request=summary)
        print(f"created key {record.id} (role {record.role}) in {keys_path}", file=sys.stderr)
        print("store it now; it is not shown again:", file=sys.stderr)
        print(key)
        return 0
    stored = read_key_file(keys_path)
    if stored is None:
        print(
            f"chunkscope keys: {_missing('key file', keys_path)}; create a key with "
            f"`chunkscope keys create --data-dir DIR --role admin`",
            file=sys.stderr,
        )
        return 1
    if args.action == "list":
        records = sorted(stored.values(), key=lambda r: r.created_at)
        if args.json:
            print(json.dumps([asdict(r) for r in records], indent=1))
            return 0
        print(f"{'id':<14} {'role':<8} {'created':<26} {'revoked':<26} name")
        for r in records:
            print(f"{r.id:<14} {r.role:<8} {_when(r.created_at):<26} "
                  f"{_when(r.revoked_at):<26} {r.name}")  # fmt: skip
        return 0
    try:
        record = keys.revoke(args.key_id)
    except KeyError as exc:
        audit.record(method="keys/revoke", outcome="NOT_FOUND", key_id=actor,
                     request={"id": args.key_id})  # fmt: skip
        print(f"chunkscope keys: {exc.args[0]}", file=sys.stderr)
        return 1
    audit.record(method="keys/revoke", outcome="OK", key_id=actor, request={"id": record.id})
    print(f"revoked key {record.id} (role {record.role})")
    return 0


def audit_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="chunkscope audit", description="Query the audit log (one JSON object per line)."
    )
    _common(parser)
    parser.add_argument("--key-id", default="", help="only calls made with this key id")
    parser.add_argument("--method", default="", help="only methods containing this text")
    parser.add_argument(
        "--since",
        default="",
        help="only records at or after this ISO 8601 date or time, e.g. 2026-05-01 or "
        "2026-05-01T12:00:00+02:00 (UTC when no offset is given)",
    )
    parser.add_argument("--outcome", default="", help="only this status, e.g. PERMISSION_DENIED")
    parser.add_argument("--limit", type=int, default=0, help="only the last N matching records")
    args = parser.parse_args(argv)
    try:
        since = parse_time(args.since) if args.since else None
    except ValueError as exc:
        parser.error(f"--since: {exc}")
    _, audit_path = _paths(args)
    if not audit_path.exists() and not audit_path.parent.exists():
        print(f"chunkscope audit: {_missing('audit log', audit_path)}", file=sys.stderr)
        return 1
    records = list(
        AuditLog(audit_path).read(
            key_id=args.key_id, method=args.method, since=since, outcome=args.outcome
        )
    )
    for entry in records[-args.limit :] if args.limit > 0 else records:
        print(json.dumps(entry, ensure_ascii=False))
    return 0
