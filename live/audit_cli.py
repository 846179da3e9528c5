"""The audit database's command line: `python -m live.audit_logger verify DB` checks the hash
chains (exit 1 when one is broken, 2 when the database or its key cannot be read) and
`python -m live.audit_logger query DB SQL` runs a read-only query."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from live.audit_chain import ChainReport, head_text, key_file_for, load_key, recorded_heads
from live.audit_reader import AuditReader


def main(argv: list[str] | None = None) -> int:
    """`python -m live.audit_logger verify DB` (exit 1 when a chain is broken) and
    `python -m live.audit_logger query DB SQL` (read-only; exit 2 on a bad query)."""
    parser = argparse.ArgumentParser(
        prog="python -m live.audit_logger", description="Audit database tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the hash chains of every audit table")
    verify.add_argument("db", type=Path)
    verify.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the chain key the database was written with (default: DB.key beside it)",
    )
    verify.add_argument(
        "--anchor",
        type=Path,
        action="append",
        default=[],
        metavar="LOG",
        help="the trader's log (logs/live_trader.log, repeatable for rotated "
        "ones): every chain head it recorded must still be in the DB",
    )
    verify.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="TABLE:ID:HASH",
        help="a chain head as the shutdown alert gives it (repeatable)",
    )
    query = commands.add_parser("query", help="run a read-only SQL query, print the rows")
    query.add_argument("db", type=Path)
    query.add_argument("sql")
    args = parser.parse_args(argv)
    try:
        reader = AuditReader(args.db)
        if args.command == "query":
            _print_rows(reader.query(args.sql))
            return 0
        key = load_key(args.key) if args.key else _verify_key(key_file_for(args.db))
        reports = reader.verify(key)
        recorded = recorded_heads(args.anchor, args.expect)
        problems = reader.missing_heads(recorded)
        heads = reader.heads()
    except (FileNotFoundError, sqlite3.Error, ValueError) as exc:  # ChainKeyError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_reports(reports, heads)
    for kind, problem in problems:
        print(f"{kind:<10} {problem}")
    if recorded and not problems:
        print(f"recorded heads: all {len(recorded)} still in place")
    return 0 if all(r.ok for r in reports) and not problems else 1


def _verify_key(path: Path) -> bytes | None:
    """The key to verify with; None when there is no key file (an older, unkeyed database
    verifies without one; a keyed one then says it needs it)."""
    return load_key(path) if path.exists() else None


def _print_reports(reports: list[ChainReport], heads: dict[str, tuple[int, str]]) -> None:
    for report in reports:
        if report.ok:
            row_id, digest = heads.get(report.table, (0, ""))
            head = f", head {head_text(report.table, row_id, digest)}" if row_id else ""
            print(f"{report.table:<18} ok      {report.rows} rows{head}")
        else:
            print(
                f"{report.table:<18} BROKEN  at id {report.broken_id} after {report.rows} "
                f"good rows: {report.reason}"
            )
        if report.unkeyed:
            print(
                f"{'':<18} note    its first {report.unkeyed} rows were written before keyed "
                "chains (plain SHA-256): anyone could rewrite those and their chain"
            )


def _print_rows(rows: list[dict[str, object]]) -> None:
    if not rows:
        print("(no rows)")
        return
    columns = list(rows[0])
    cells = [[("" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
