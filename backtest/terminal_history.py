"""History from a terminal: closed bars of a symbol over a span, fetched through anything
with `rates_range` (live.mt5_connector.MT5Connector) and kept in an on-disk cache (a CSV
per symbol and timeframe plus the span it covers), so only what the cache lacks is asked for.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from backtest.atomic import write_atomic
from backtest.data import BAR_COLUMNS, DataError, load_csv, save_csv, timeframe_seconds

logger = logging.getLogger(__name__)


class RatesSource:
    """What load_from_terminal needs: live.mt5_connector.MT5Connector provides it."""

    def rates_range(
        self, symbol: str, timeframe: str, date_from: object, date_to: object
    ) -> pd.DataFrame:  # pragma: no cover - an interface
        raise NotImplementedError


def load_from_terminal(
    source: RatesSource,
    symbol: str,
    timeframe: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    cache_dir: str | Path | None = None,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Closed bars of `symbol` in [start, end] from a terminal, kept in an on-disk cache.

    The cache (a CSV per symbol and timeframe, plus the time span it covers) keeps every
    closed bar fetched so far; only the parts of [start, end] it does not cover are asked
    from the terminal. A bar still forming at `now` is never cached.
    """
    start, end = _utc_stamp(start), _utc_stamp(end)
    width = pd.Timedelta(seconds=timeframe_seconds(timeframe))
    limit = _utc_stamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    end = min(end, limit - width)  # the forming bar is never returned, so never fetched
    cached, covered = _read_cache(cache_dir, symbol, timeframe)
    fresh = []
    for gap_start, gap_end in _missing(covered, start, end, width):
        fresh.append(
            source.rates_range(
                symbol, timeframe, gap_start.to_pydatetime(), gap_end.to_pydatetime()
            )
        )
    merged = _merge(cached, fresh)
    closed = merged[merged["time"] + width <= limit].reset_index(drop=True)
    if fresh and cache_dir is not None:
        span = (
            min(start, covered[0]) if covered else start,
            min(max(end, covered[1]) if covered else end, limit - width),
        )
        _write_cache(cache_dir, symbol, timeframe, closed, span)
    window = closed[(closed["time"] >= start) & (closed["time"] <= end)]
    return window.reset_index(drop=True)


def _utc_stamp(moment: object) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _cache_path(cache_dir: str | Path, symbol: str, timeframe: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in symbol)
    return Path(cache_dir) / f"{safe}_{timeframe.upper()}.csv"


_EMPTY = pd.DataFrame(columns=list(BAR_COLUMNS))


def _read_cache(
    cache_dir: str | Path | None, symbol: str, timeframe: str
) -> tuple[pd.DataFrame, tuple[pd.Timestamp, pd.Timestamp] | None]:
    """The cached bars and the span of time they cover (None: nothing cached)."""
    if cache_dir is None:
        return _EMPTY, None
    path = _cache_path(cache_dir, symbol, timeframe)
    span_file = path.with_suffix(".span.json")
    if not path.is_file() or not span_file.is_file():
        return _EMPTY, None
    try:
        span = json.loads(span_file.read_text(encoding="utf-8"))
        return load_csv(path), (_utc_stamp(span["from"]), _utc_stamp(span["to"]))
    except (DataError, ValueError, KeyError) as exc:
        logger.warning(
            "ignoring a damaged cache for %s %s (%s); fetching again", symbol, timeframe, exc
        )
        return _EMPTY, None


def _write_cache(
    cache_dir: str | Path,
    symbol: str,
    timeframe: str,
    bars: pd.DataFrame,
    span: tuple[pd.Timestamp, pd.Timestamp],
) -> None:
    path = _cache_path(cache_dir, symbol, timeframe)
    save_csv(bars, path)
    span = {"from": span[0].isoformat(), "to": span[1].isoformat()}
    write_atomic(path.with_suffix(".span.json"), json.dumps(span))


def _missing(
    covered: tuple[pd.Timestamp, pd.Timestamp] | None,
    start: pd.Timestamp,
    end: pd.Timestamp,
    width: pd.Timedelta,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Parts of [start, end] outside the covered span (kept contiguous by design)."""
    if covered is None:
        return [(start, end)]
    first, last = covered
    gaps = []
    if start < first:
        gaps.append((start, first - width))
    if end > last:
        gaps.append((last + width, end))
    return gaps


def _merge(cached: pd.DataFrame, fresh: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in (cached, *fresh) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(BAR_COLUMNS))
    merged = pd.concat(frames, ignore_index=True)
    merged = merged.drop_duplicates("time", keep="last").sort_values("time")
    return merged.reset_index(drop=True)
