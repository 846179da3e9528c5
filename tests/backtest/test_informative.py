"""Informative timeframes: a higher bar shows only from the first bar opening after it
closed, its close is on the broker's clock (a Friday's at the server's Saturday midnight,
across a daylight-saving switch), the look-ahead check catches a strategy reading a day
before it closed, and bad declarations stop the command line naming the symbol and file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.broker_clock import parse_zone
from backtest.cli import main
from backtest.data import save_csv
from backtest.informative import (
    InformativeError,
    align,
    check_informative,
    resampled,
    with_close_times,
)
from backtest.lookahead import check_lookahead
from backtest.strategy import Strategy, StrategyError, compute_signals
from backtest.synthetic import generate_bars

STRATEGY = "backtest/strategies/daily_trend_sma.py"


def test_a_daily_bar_shows_from_the_first_bar_after_it_closed():
    bars = generate_bars("EURUSD", "H1", 24 * 8, start="2024-01-08")  # Monday, UTC days
    daily = resampled(bars, ("D1",))["D1"]
    seen = align(daily["close"], daily, bars)
    # each bar: the close of the daily bar before its own day's (Monday: Friday's)
    own = np.searchsorted(daily["time"].to_numpy(), bars["time"].dt.floor("D").to_numpy())
    previous = daily["close"].to_numpy()[np.maximum(own - 1, 0)]
    first_day = own == 0
    assert seen[first_day].isna().all()  # no day had closed yet
    assert np.array_equal(seen[~first_day].to_numpy(), previous[~first_day])
    assert (bars["time"].diff() > pd.Timedelta(days=1)).any()  # a weekend crossed
    as_array = align(daily["close"].to_numpy(), daily, bars)
    assert as_array.equals(seen.astype(float))
    with pytest.raises(ValueError, match=f"3 values for {len(daily)} bars"):
        align(np.zeros(3), daily, bars)


def test_daily_bars_close_at_the_servers_midnight_across_a_switch():
    """NY+7: the server's midnight is 22:00 UTC in winter, 21:00 after the US switch of
    March 10, 2024; Friday's bar closes at Saturday 00:00 server time."""
    zone = parse_zone("NY+7")
    bars = generate_bars("EURUSD", "H1", 24 * 10, start="2024-03-04")
    daily = resampled(bars, ("D1",), zone)["D1"].set_index("time")["close_time"]
    utc = pd.Timestamp
    assert daily[utc("2024-03-07 22:00", tz="UTC")] == utc("2024-03-08 22:00", tz="UTC")  # Fri
    assert daily[utc("2024-03-10 21:00", tz="UTC")] == utc("2024-03-11 21:00", tz="UTC")  # Mon
    # the week from Sunday March 10, 00:00 server (22:00 UTC the day before) spans the
    # switch: it closes 7 days less an hour later
    weekly = with_close_times(
        pd.DataFrame({"time": [utc("2024-03-09 22:00", tz="UTC")]}), "W1", zone
    )
    assert weekly["close_time"].iloc[0] == utc("2024-03-16 21:00", tz="UTC")


class LeakyDaily(Strategy):
    """Each bar compared with its own day's close: known only when the day is over."""

    informative = ("D1",)

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        daily = self.informative_bars("D1")
        by_day = pd.Series(daily["close"].to_numpy(), index=daily["time"])
        today = by_day.reindex(bars["time"].dt.floor("D")).to_numpy()
        return pd.DataFrame({"position": np.where(bars["close"].to_numpy() < today, 1, -1)})


def test_the_look_ahead_check_covers_informative_bars():
    bars = generate_bars("EURUSD", "H1", 24 * 40, seed=2)
    from backtest.strategy import get_strategy_from_file

    assert check_lookahead(get_strategy_from_file(STRATEGY)(days=5), bars, checkpoints=30).ok
    leaky = check_lookahead(LeakyDaily(), bars, checkpoints=30)
    assert not leaky.ok and leaky.mismatches[0].column == "position"


def test_a_timeframe_not_declared_or_outside_signals_is_refused():
    class Asks(Strategy):
        informative = ("H4",)

        def signals(self, bars):
            self.informative_bars("D1")
            return pd.Series(0, index=bars.index)

    bars = generate_bars("EURUSD", "H1", 50)
    with pytest.raises(StrategyError, match=r"'D1' is not declared \(declared: H4\)"):
        compute_signals(Asks(), bars, informative=resampled(bars, ("H4",)))
    with pytest.raises(StrategyError, match="only available inside signals"):
        Asks().informative_bars("H4")


@pytest.mark.parametrize(
    ("declared", "words"),
    [(("M30",), "M30 must be a whole multiple"), (("H2",), "'H2' is not a timeframe (M1, M5")],
)
def test_the_command_line_names_the_symbol_and_file(tmp_path, capsys, declared, words):
    data = tmp_path / "GBPUSD_H1.csv"
    save_csv(generate_bars("GBPUSD", "H1", 300), data)
    strategy = tmp_path / "mtf.py"
    strategy.write_text(
        "import pandas as pd\nfrom backtest.strategy import Strategy\n\n"
        f"class Mtf(Strategy):\n    informative = {declared!r}\n\n"
        "    def signals(self, bars):\n        return pd.Series(0, index=bars.index)\n"
    )
    for command in ("run", "lookahead"):
        assert main([command, "--strategy", str(strategy), "--data", str(data)]) == 2
        err = capsys.readouterr().err
        assert words in err
        if declared == ("M30",):
            assert f"GBPUSD ({data})" in err
    with pytest.raises(InformativeError):
        check_informative(type("S", (), {"informative": declared}), generate_bars(
            "EURUSD", "H1", 10), "EURUSD")  # fmt: skip


def test_the_example_trades_with_the_daily_trend_only():
    """Longs only while the last closed day is above its average, shorts only below."""
    from backtest.engine import BacktestConfig, run_backtest
    from backtest.indicators import sma
    from backtest.strategy import get_strategy_from_file
    from backtest.symbols import get_symbol_spec

    bars = generate_bars("EURUSD", "H1", 24 * 120, seed=7)
    strategy = get_strategy_from_file(STRATEGY)(days=10)
    result = run_backtest(bars, strategy, spec=get_symbol_spec("EURUSD"), config=BacktestConfig())
    assert len(result.trades) > 10
    daily = resampled(bars, ("D1",))["D1"]
    trend = align(np.asarray(daily["close"] - sma(daily["close"], 10)), daily, bars).to_numpy()
    decided = result.trades["signal_bar"].to_numpy()
    longs = (result.trades["direction"] == "long").to_numpy()
    assert (trend[decided][longs] > 0).all() and (trend[decided][~longs] < 0).all()


def test_another_symbols_bar_shows_from_the_next_bar_and_its_future_is_caught(tmp_path, capsys):
    """GBPUSD's H1 bar of 10:00 reaches a EURUSD decision from the 11:00 bar on (it closed at
    11:00); a strategy reading GBPUSD's next close is caught by the look-ahead check; a
    symbol without bars beside the data file exits 2 naming it and the folder."""
    from backtest.informative import informative_for

    own = generate_bars("EURUSD", "H1", 400, seed=1)
    pound = generate_bars("GBPUSD", "H1", 400, seed=2)

    class Reads(Strategy):
        informative = ("GBPUSD", "USDJPY:H4")

    frames = informative_for(Reads(), own, parse_zone("UTC"), "EURUSD", {
        "GBPUSD": pound, "USDJPY": generate_bars("USDJPY", "H1", 400, seed=3)})  # fmt: skip
    seen = align(frames["GBPUSD"]["close"], frames["GBPUSD"], own).to_numpy()
    assert np.isnan(seen[0]) and np.array_equal(seen[1:], pound["close"].to_numpy()[:-1])
    four_hours = frames["USDJPY:H4"]
    assert (four_hours["time"].dt.hour % 4 == 0).all() and len(four_hours) < 400 / 3

    class PeeksAhead(Strategy):
        informative = ("GBPUSD",)

        def signals(self, bars):
            other = self.informative_bars("GBPUSD").set_index("time")["close"]
            later = other.shift(-1).reindex(bars["time"]).to_numpy()
            return pd.DataFrame({"position": np.where(later > other.reindex(bars["time"]), 1, -1)})

    report = check_lookahead(PeeksAhead(), own, checkpoints=20, other_bars={"GBPUSD": pound})
    assert not report.ok
    from backtest.strategy import get_strategy_from_file

    basket = get_strategy_from_file("backtest/strategies/usd_basket_sma.py")()
    others = {"GBPUSD": pound, "USDJPY": generate_bars("USDJPY", "H1", 400, seed=3)}
    assert check_lookahead(basket, own, checkpoints=20, other_bars=others).ok
    save_csv(own, tmp_path / "EURUSD_H1.csv")
    args = ["run", "--strategy", "backtest/strategies/usd_basket_sma.py", "--data",
            str(tmp_path / "EURUSD_H1.csv")]  # fmt: skip
    assert main(args) == 2
    assert f"GBPUSD: no bars in {tmp_path}" in capsys.readouterr().err
    save_csv(pound, tmp_path / "GBPUSD_H1.csv")
    save_csv(others["USDJPY"], tmp_path / "USDJPY_H1.csv")
    assert main(args) == 0
