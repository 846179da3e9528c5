"""What a trading session leaves in the log as it ends, besides its summary: the audit chains'
last rows (the anchor `audit_logger verify --anchor` checks the database against) and the
commands that browse and verify the session's record, as the user can type them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from pathlib import Path

from live.audit_chain import HEADS_LOG_PREFIX, head_text
from live.audit_reader import AuditReader
from live.config import PROJECT_ROOT

logger = logging.getLogger(__name__)


def anchor_audit_heads(reader: AuditReader) -> list[str]:
    """Log the audit chains' last rows (the log lives apart from the database) and give
    them for the shutdown alert: `verify --anchor`/`--expect` then reveal rows removed
    from the end of a table, which a hash chain alone cannot."""
    try:
        heads = reader.heads()
    except sqlite3.Error as exc:
        logger.error("could not read the audit chain heads: %s", exc)
        return []
    logger.info(HEADS_LOG_PREFIX + json.dumps(heads))
    return [
        "  audit heads: "
        + ", ".join(
            head_text(table, *heads[table]) for table in ("orders", "trades") if table in heads
        )
    ]


def log_record_hint(audit_db: Path) -> None:
    """Where the session's record is, and the commands that browse and check it (both run
    in the project root)."""
    db, root = _quoted(audit_db), _quoted(PROJECT_ROOT)
    python = _quoted(_python_command(PROJECT_ROOT))
    logger.info(
        "the record of this session is in %s: browse it with `cd %s && %s %s --db %s`, "
        "check it with `cd %s && %s -m live.audit_logger verify %s`",
        db,
        root,
        python,
        Path("live") / "dashboard.py",
        db,
        root,
        python,
        db,
    )


def _python_command(folder: Path) -> str:
    """The interpreter running us, as the user can type it in `folder`: relative when it is
    inside (the project's venv, usually), else absolute. Normalised, not resolved: started
    from live/ as `../.venv/bin/python` it is `<root>/live/../.venv/bin/python`, and a venv's
    python must not be followed to the system interpreter its link points at."""
    executable = Path(os.path.abspath(sys.executable))
    try:
        return str(executable.relative_to(os.path.abspath(folder)))
    except ValueError:
        return str(executable)


def _quoted(path: object) -> str:
    """A path as a shell (sh or cmd) takes it: in double quotes when it holds a space."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text
