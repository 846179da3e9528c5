"""The look-ahead check passes honest strategies and catches leaky ones at the right bar."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.indicators import sma
from backtest.lookahead import LookaheadError, bars_needed, check_lookahead, checkpoints
from backtest.strategy import Strategy, get_strategy_from_file
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "backtest" / "strategies").glob("[!_]*.py"))


@pytest.fixture(scope="module")
def bars():
    return generate_bars("EURUSD", "H1", 1500, seed=5)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_strategies_pass(path, bars):
    from backtest.informative import declared_symbols

    strategy = get_strategy_from_file(path)()
    others = {  # the other symbols a strategy reads, on the same calendar
        symbol: generate_bars(symbol, "H1", 1500, seed=6 + k)
        for k, symbol in enumerate(declared_symbols(strategy))
    }
    report = check_lookahead(strategy, bars, checkpoints=30, other_bars=others)
    assert report.ok, report.summary()
    assert len(report.checked) >= 27


class PeeksNextClose(Strategy):
    def signals(self, bars):
        future = bars["close"].shift(-1)
        return pd.Series((future > bars["close"]).astype(int), index=bars.index)


class CentredAverage(Strategy):
    def signals(self, bars):
        centred = bars["close"].rolling(21, center=True, min_periods=1).mean()
        return pd.Series((bars["close"] > centred).astype(int), index=bars.index)


class NormalisedByWholeSeries(Strategy):
    def signals(self, bars):
        scaled = bars["close"] / bars["close"].max()
        position = (scaled > 0.97).astype(int)
        return pd.DataFrame({"position": position, "sl_distance": scaled * 0.01})


class SizeFromTheNextBar(Strategy):
    """Leaks through a management column only: the position itself is honest."""

    def signals(self, bars):
        position = (bars["close"] > sma(bars["close"], 20)).astype(int)
        size = (bars["close"].shift(-1) > bars["close"]).astype(float) * 0.5 + 0.5
        return pd.DataFrame({"position": position, "size": size})


class StopFromTheWholeSeries(Strategy):
    moving_stops = True

    def signals(self, bars):
        stop = pd.Series(bars["low"].min() - 0.01, index=bars.index)
        return pd.DataFrame({"position": 1, "sl": stop}, index=bars.index)


class HonestSma(Strategy):
    @property
    def warmup(self) -> int:
        return 21

    def signals(self, bars):
        return pd.Series((bars["close"] > sma(bars["close"], 20)).astype(int), index=bars.index)


@pytest.mark.parametrize(
    "leaky",
    [
        PeeksNextClose,
        CentredAverage,
        NormalisedByWholeSeries,
        SizeFromTheNextBar,
        StopFromTheWholeSeries,
    ],
)
def test_leaky_strategies_are_caught(leaky, bars):
    report = check_lookahead(leaky(), bars, checkpoints=40)
    assert not report.ok
    first = report.mismatches[0]
    assert first.bar in report.checked
    assert first.time == bars["time"].iloc[first.bar]
    assert "LOOK-AHEAD" in report.summary() and f"bar {first.bar}" in report.summary()


def test_honest_inline_strategy_passes(bars):
    assert check_lookahead(HonestSma(), bars).ok


def test_checkpoints_cover_the_end_and_skip_the_warmup():
    points = checkpoints(1000, 100, 20)
    assert points[0] == 100 and points[-3:] == [997, 998, 999]
    assert len(points) >= 17


@pytest.mark.parametrize(("n_bars", "ok"), [(21, False), (22, False), (23, True)])
def test_data_shorter_than_the_check_needs_is_refused_with_the_counts(n_bars, ok, bars):
    # warm-up 21: 21 bars, one to decide on, and one later bar whose absence could matter
    assert bars_needed(21) == 23
    short = bars.iloc[:n_bars].reset_index(drop=True)
    if ok:
        assert check_lookahead(HonestSma(), short, checkpoints=5).ok
        return
    with pytest.raises(LookaheadError) as info:
        check_lookahead(HonestSma(), short)
    assert str(info.value) == (
        f"HonestSma (module {__name__}) has a warm-up of 21 bars, so the look-ahead check "
        f"needs at least 23 bars (a few hundred more make it stronger); the data has {n_bars}"
    )


@pytest.mark.parametrize("count", [0, -1])
def test_no_checkpoints_is_refused(count, bars):
    with pytest.raises(LookaheadError, match=f"--checkpoints must be at least 1, got {count}"):
        check_lookahead(HonestSma(), bars, checkpoints=count)


def test_one_checkpoint_still_checks_the_last_bars(bars):
    report = check_lookahead(HonestSma(), bars.iloc[:100].reset_index(drop=True), checkpoints=1)
    assert report.ok and report.checked[-3:] == [97, 98, 99]
    assert report.checked[0] >= 21  # not inside the warm-up
