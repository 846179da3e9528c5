"""The findings of `live_trader.py --check` (live/doctor.py) and how they are told: as the
check's OK / WARN / FAIL lines, or as one JSON document for monitoring systems (`--json`),
with any secret value blanked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields

from live.config import LiveConfig


@dataclass(frozen=True)
class Finding:
    """One line of the check: `name` says which check (strategy, connection, symbol EURUSD,
    ...), `level` is ok, warn or fail; only a failure stops the trader."""

    name: str
    level: str
    detail: str
    fix: str = ""
    key: str = ""  # the setting at fault, when one is known

    @property
    def ok(self) -> bool:
        return self.level != "fail"

    def as_dict(self) -> dict[str, object]:
        shown: dict[str, object] = {"name": self.name, "ok": self.ok, **asdict(self)}
        if not self.key:
            del shown["key"]
        return shown


class Report:
    """The check's lines, each OK, WARN or FAIL, printed through `out` and kept as findings
    under the name of the check running (`name`); failures decide the exit code."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.failures = 0
        self.name = "settings"
        self.findings: list[Finding] = []

    def ok(self, text: str) -> None:
        self._add("ok", text)
        self.out(f"  OK    {text}")

    def warn(self, text: str) -> None:
        self._add("warn", text)
        self.out(f"  WARN  {text}")

    def fail(self, text: str, fix: str = "") -> None:
        self.failures += 1
        self._add("fail", text, fix)
        self.out(f"  FAIL  {text}" + (f"\n        fix: {fix}" if fix else ""))

    def _add(self, level: str, text: str, fix: str = "") -> None:
        self.findings.append(Finding(self.name, level, text.strip(), fix))


def document(
    findings: Iterable[Finding],
    code: int,
    result: str,
    settings: dict[str, object] | None = None,
    *,
    secrets: Iterable[str] = (),
) -> str:
    """The check as JSON: overall `ok` (true only for exit code 0), the exit code, the
    verdict, the settings checked and each finding; a secret value that slipped into a
    text is blanked."""
    text = json.dumps(
        {
            "ok": code == 0,
            "exit_code": code,
            "result": result,
            "settings": settings or {},
            "checks": [finding.as_dict() for finding in findings],
        },
        indent=2,
    )
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return text


def setting_named(message: str) -> str:
    """The settings key a configuration error names first (TIMEFRAME, MT5_LOGIN, ...), or
    "" when it names none."""
    found = []
    for spec in fields(LiveConfig):
        key = spec.metadata["env"]
        match = re.search(rf"(?<![A-Z0-9_]){key}(?![A-Z0-9_])", message)
        if match:
            found.append((match.start(), key))
    return min(found)[1] if found else ""
