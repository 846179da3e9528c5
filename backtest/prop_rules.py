"""Account-protection rules as data: the parameters prop firms (or a trader's own discipline)
set on an account, read from a preset file the user edits (`presets/*.toml`).

This module owns the rule model (frozen dataclasses) and the preset loader with its checks;
`backtest/challenge.py` evaluates the rules on an equity path. The format is documented in
docs/backtest.md ("Account protection presets").
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backtest.broker_clock import BrokerZoneError, parse_zone
from backtest.econ_calendar import IMPACTS
from backtest.errors import BacktestError

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"

DAY_BASES = ("balance", "equity", "higher")  # what the daily floor's day base is
FLOOR_OF = ("initial", "day_base")  # what a daily percentage is of
EFFECTS = ("fail", "pause")
MAX_LOSS_MODES = ("static", "trailing")
HIGH_WATER = ("eod_balance", "intraday_equity")
TRADING_DAY_RULES = ("position_opened", "profitable")


@dataclass(frozen=True)
class Reset:
    """When a trading day starts: a wall time in a named zone (`broker` = the server's)."""

    hour: int = 0
    minute: int = 0
    zone: str = "broker"

    @property
    def seconds(self) -> int:
        """Seconds after the zone's midnight the day starts."""
        return self.hour * 3600 + self.minute * 60

    def label(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d} {self.zone}"


@dataclass(frozen=True)
class DailyFloor:
    """Equity may not fall below the day base (or the initial balance) minus the limit."""

    limit_pct: float | None = None
    limit_amount: float | None = None
    of: str = "initial"
    day_base: str = "balance"
    reset: Reset = field(default_factory=Reset)
    effect: str = "fail"

    def base_of(self, balance: Any, equity: Any) -> Any:
        """The day base snapshotted at the reset (numbers or numpy arrays)."""
        if self.day_base == "balance":
            return balance
        if self.day_base == "equity":
            return equity
        return np.maximum(balance, equity)

    def level(self, base: Any, initial: float) -> Any:
        """The floor of a day whose base is `base`."""
        if self.limit_amount is not None:
            return base - self.limit_amount
        of = initial if self.of == "initial" else base
        return base - of * self.limit_pct / 100.0


@dataclass(frozen=True)
class MaxLoss:
    """Equity may not fall below the initial balance (static) or a high-water mark
    (trailing) minus the limit; a trailing floor only rises, and may stop at the initial
    balance (`lock_at_initial`)."""

    limit_pct: float | None = None
    limit_amount: float | None = None
    mode: str = "static"
    high_water: str = "eod_balance"
    lock_at_initial: bool = False

    def level(self, mark: Any, initial: float) -> Any:
        """The floor under a high-water mark `mark` (ignored when static)."""
        limit = self.limit_amount
        if limit is None:
            limit = initial * self.limit_pct / 100.0
        if self.mode == "static":
            return initial - limit
        floor = np.maximum(mark, initial) - limit
        return np.minimum(floor, initial) if self.lock_at_initial else floor


@dataclass(frozen=True)
class Exposure:
    """Limits on what may be opened (0 or false = no limit). `max_risk_pct` is the loss of a
    new entry at its stop, % of the initial balance; `require_stop` refuses an entry
    without one."""

    max_lots_per_order: float = 0.0
    max_open_lots: float = 0.0
    max_risk_pct: float = 0.0
    require_stop: bool = False
    min_trade_seconds: float = 0.0  # a position is kept this long (backtest.min_hold)


@dataclass(frozen=True)
class Windows:
    """Trading windows a firm imposes (news blackouts, flat before the weekend). They
    tighten the trader's and the backtest's own window settings of the same names: the
    longer minutes, the union of impacts, flattening if either says so."""

    news_before_min: float = 0.0
    news_after_min: float = 0.0
    news_impact: tuple[str, ...] = ("high",)
    news_flatten: bool = False
    flat_before_weekend_min: float | None = None

    @property
    def news(self) -> bool:
        return bool(self.news_before_min or self.news_after_min)

    def tightened(self, settings: Any) -> dict[str, Any]:
        """The window settings of `settings` (LiveConfig, the backtest's options) made at
        least as strict as these, by name."""
        changes: dict[str, Any] = {}
        for name in ("news_before_min", "news_after_min"):
            changes[name] = max(float(getattr(settings, name) or 0.0), getattr(self, name))
        if self.news:
            own = [i.strip() for i in str(settings.news_impact).split(",") if i.strip()]
            changes["news_impact"] = ",".join(dict.fromkeys([*own, *self.news_impact]))
            changes["news_flatten"] = bool(settings.news_flatten) or self.news_flatten
        if self.flat_before_weekend_min is not None:
            own_flat = settings.flat_before_weekend_min
            changes["flat_before_weekend_min"] = max(own_flat or 0.0, self.flat_before_weekend_min)
        return changes


@dataclass(frozen=True)
class Preset:
    """One account's rules. Percentages are of the initial balance unless said otherwise;
    `buffer_pct` stops that much inside every floor (firms take minutes to liquidate)."""

    name: str
    description: str = ""
    buffer_pct: float = 0.0
    daily_floor: DailyFloor | None = None
    max_loss: MaxLoss | None = None
    targets_pct: tuple[float, ...] = ()
    min_trading_days: int = 0
    trading_day: str = "position_opened"
    profitable_day_pct: float = 0.5
    max_days: int = 0
    consistency_pct: float = 0.0
    exposure: Exposure = field(default_factory=Exposure)
    windows: Windows | None = None

    def tightened(self, settings: Any) -> dict[str, Any]:
        """The settings of `settings` (LiveConfig, the backtest's options) this preset makes
        stricter, by name: its [windows], and its minimum trade duration."""
        changes = self.windows.tightened(settings) if self.windows is not None else {}
        if self.exposure.min_trade_seconds:
            own = float(getattr(settings, "min_trade_seconds", 0.0) or 0.0)
            changes["min_trade_seconds"] = max(own, self.exposure.min_trade_seconds)
        return changes

    def buffer(self, initial: float) -> float:
        """How far inside every floor the trader stops, in money."""
        return initial * self.buffer_pct / 100.0


# ---------------------------------------------------------------- the preset file loader


class PresetError(BacktestError, ValueError):
    """A preset file that cannot be used: `path` is the file, `key` the offending key
    (`daily_floor.effect`), or None when the whole file is at fault."""

    def __init__(self, path: Path | str, key: str | None, message: str) -> None:
        self.path = Path(path)
        self.key = key
        super().__init__(f"{path}: {message}")


# each key's kind: a tuple of allowed strings, or one of the names _convert knows
_TOP_KEYS: dict[str, Any] = {
    "name": "text",
    "description": "text",
    "buffer_pct": "amount",
    "targets_pct": "amounts",
    "min_trading_days": "count",
    "trading_day": TRADING_DAY_RULES,
    "profitable_day_pct": "amount",
    "max_days": "count",
    "consistency_pct": "amount",
    "daily_floor": "table",
    "max_loss": "table",
    "exposure": "table",
    "windows": "table",
}
_DAILY_KEYS: dict[str, Any] = {
    "limit_pct": "amount",
    "limit_amount": "amount",
    "of": FLOOR_OF,
    "day_base": DAY_BASES,
    "reset": "reset",
    "effect": EFFECTS,
}
_MAX_LOSS_KEYS: dict[str, Any] = {
    "limit_pct": "amount",
    "limit_amount": "amount",
    "mode": MAX_LOSS_MODES,
    "high_water": HIGH_WATER,
    "lock_at_initial": "flag",
}
_EXPOSURE_KEYS: dict[str, Any] = {
    "max_lots_per_order": "amount",
    "max_open_lots": "amount",
    "max_risk_pct": "amount",
    "require_stop": "flag",
    "min_trade_seconds": "amount",
}
_WINDOWS_KEYS: dict[str, Any] = {
    "news_before_min": "amount",
    "news_after_min": "amount",
    "news_impact": "impacts",
    "news_flatten": "flag",
    "flat_before_weekend_min": "amount",
}
_LIMITS = ("limit_pct", "limit_amount")
_RESET = re.compile(r"^(\d{1,2}):(\d{2})(?:\s+(\S.*))?$")
_RESET_HELP = (
    'write "HH:MM ZONE" (00:00-23:59), ZONE an IANA name such as Europe/Prague, '
    "broker (the server's clock), UTC, UTC+2 or NY+7"
)
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def list_presets(folder: Path = PRESETS_DIR) -> list[str]:
    """The names (file stems) of the `*.toml` presets in `folder`, sorted."""
    return sorted(path.stem for path in Path(folder).glob("*.toml"))


def load_preset(name_or_path: str | Path, *, folder: Path = PRESETS_DIR) -> Preset:
    """A preset from a `.toml` file path, or from a bare name looked up as
    `<folder>/<name>.toml`. Raises PresetError naming the file, key and allowed values."""
    path = _locate(str(name_or_path), Path(folder))
    return _build_preset(path, _read_toml(path))


def _locate(name_or_path: str, folder: Path) -> Path:
    """The file a preset name or path means; a missing one lists what is available."""
    is_path = name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path
    path = Path(name_or_path) if is_path else folder / f"{name_or_path}.toml"
    if path.is_file():
        return path
    where = path.parent if is_path else folder
    available = list_presets(where)
    close = difflib.get_close_matches(path.stem, available, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listing = ", ".join(available) or "none"
    raise PresetError(path, None, f"preset not found{hint}; available in {where}: {listing}")


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; a syntax error names the line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        text = str(error)
        where = _TOML_LINE.search(text)
        if where:
            text = _TOML_LINE.sub("", text).strip()
            text = f"line {where.group(1)}, column {where.group(2)}: not valid TOML: {text}"
        raise PresetError(path, None, text if where else f"not valid TOML: {text}") from None
    except UnicodeDecodeError as error:
        raise PresetError(path, None, f"not UTF-8 text: {error}") from None


def _build_preset(path: Path, data: dict[str, Any]) -> Preset:
    """A Preset from the file's top-level table."""
    values = _read_table(path, data, _TOP_KEYS, prefix="")
    for table, cls, keys in (
        ("daily_floor", DailyFloor, _DAILY_KEYS),
        ("max_loss", MaxLoss, _MAX_LOSS_KEYS),
    ):
        if table in values:
            values[table] = cls(**_read_limit_table(path, values[table], keys, table))
    if "exposure" in values:
        values["exposure"] = Exposure(
            **_read_table(path, values["exposure"], _EXPOSURE_KEYS, prefix="exposure.")
        )
    if "windows" in values:
        values["windows"] = Windows(
            **_read_table(path, values["windows"], _WINDOWS_KEYS, prefix="windows.")
        )
    values.setdefault("name", path.stem)
    return Preset(**values)


def _read_limit_table(
    path: Path, data: dict[str, Any], keys: dict[str, Any], table: str
) -> dict[str, Any]:
    """A daily_floor or max_loss table: its keys checked, exactly one limit given."""
    values = _read_table(path, data, keys, prefix=f"{table}.")
    given = [key for key in _LIMITS if key in values]
    if len(given) != 1:
        found = "both" if given else "neither"
        raise PresetError(
            path, table, f"{table} needs exactly one of limit_pct, limit_amount (found {found})"
        )
    return values


def _read_table(
    path: Path, data: dict[str, Any], keys: dict[str, Any], *, prefix: str
) -> dict[str, Any]:
    """Every key of a table checked against `keys` and converted to the model's type."""
    values = {}
    for key, value in data.items():
        if key not in keys:
            raise _unknown_key(path, prefix + key, list(keys))
        values[key] = _convert(path, prefix + key, value, keys[key])
    return values


def _unknown_key(path: Path, key: str, allowed: list[str]) -> PresetError:
    """An unknown key, with the nearest known one suggested."""
    prefix, _, short = key.rpartition(".")
    close = difflib.get_close_matches(short, allowed, n=1, cutoff=0.5)
    hint = f" (did you mean {(prefix + '.' if prefix else '') + close[0]!r}?)" if close else ""
    where = f" of [{prefix}]" if prefix else ""
    return PresetError(path, key, f"unknown key {key!r}{hint}; keys{where}: {', '.join(allowed)}")


def _convert(path: Path, key: str, value: Any, kind: Any) -> Any:
    """One value checked and converted; `kind` is a tuple of allowed strings or a name."""
    if isinstance(kind, tuple):
        return _choice(path, key, value, kind)
    converters = {
        "text": _text,
        "amount": _amount,
        "amounts": _amounts,
        "count": _count,
        "flag": _flag,
        "reset": _reset,
        "table": _table,
        "impacts": _impacts,
    }
    return converters[kind](path, key, value)


def _bad(path: Path, key: str, value: Any, wanted: str) -> PresetError:
    """The common message: the key, the value found, and what is allowed."""
    return PresetError(path, key, f"{key} = {value!r} {wanted}")


def _choice(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _bad(path, key, value, f"is not one of {', '.join(allowed)}")
    return value


def _text(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(path, key, value, 'is not text; write a quoted string ("...")')
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _amount(path: Path, key: str, value: Any) -> float:
    if not _is_number(value):
        raise _bad(path, key, value, "is not a number; write a number >= 0 such as 5.0")
    if value < 0:
        raise _bad(path, key, value, "is negative; write a number >= 0 such as 5.0")
    return float(value)


def _amounts(path: Path, key: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise _bad(path, key, value, "is not a list; write numbers >= 0 such as [10.0, 5.0]")
    return tuple(_amount(path, f"{key}[{i}]", item) for i, item in enumerate(value))


def _impacts(path: Path, key: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item in IMPACTS for item in items):
        raise _bad(path, key, value, f'is not a list of {", ".join(IMPACTS)} (such as ["high"])')
    return tuple(items)


def _count(path: Path, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(path, key, value, "is not a whole number >= 0 (such as 4)")
    return value


def _flag(path: Path, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, key, value, "is not one of true, false")
    return value


def _table(path: Path, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, key, value, f"is not a table; write a [{key}] section")
    return value


def _reset(path: Path, key: str, value: Any) -> Reset:
    """`"HH:MM ZONE"`: the zone `broker`, or any zone backtest.broker_clock.parse_zone reads."""
    match = _RESET.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _bad(path, key, value, f"is not a reset time; {_RESET_HELP}")
    hour, minute, zone = int(match.group(1)), int(match.group(2)), match.group(3)
    if hour > 23 or minute > 59:
        raise _bad(path, key, value, f"is not a valid time; {_RESET_HELP}")
    if zone is None:
        raise _bad(path, key, value, f"has no zone; {_RESET_HELP}")
    zone = zone.strip()
    if zone != "broker":
        try:
            parse_zone(zone, key)
        except BrokerZoneError:
            raise _bad(path, key, value, f"has unknown time zone {zone!r}; {_RESET_HELP}") from None
    return Reset(hour=hour, minute=minute, zone=zone)
