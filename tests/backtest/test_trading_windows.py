"""Trading windows in the backtest: trade hours on the broker's clock, no entries at session
edges, flat before the weekend, news blackouts; and the rule a live trader deciding bar by
bar applies gives the same positions as the backtest's pass over all bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.broker_clock import parse_zone
from backtest.cli import main
from backtest.data import save_csv
from backtest.econ_calendar import load_calendar
from backtest.engine import BacktestConfig, run_backtest
from backtest.sessions import FOREX_DEFAULT, parse_hours
from backtest.signals import normalize_signals
from backtest.strategy import Strategy
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from backtest.trading_windows import TradingRules, epoch_seconds, restrict_to_windows

NY7 = parse_zone("NY+7")
SPEC = get_symbol_spec("EURUSD")
CALENDAR = "docs/calendar_sample.csv"


class Blocks(Strategy):
    """Long, then short, in blocks of `length` bars: entries at every hour of the day."""

    length: int = 5

    @property
    def warmup(self) -> int:
        return 1

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        block = (np.arange(len(bars)) // self.length) % 3
        return pd.DataFrame({"position": np.choose(block, [1, 0, -1])})


class AlwaysLong(Strategy):
    """Long on every bar; with `weekly`, a fresh entry on each week's first bar."""

    weekly: bool = False

    @property
    def warmup(self) -> int:
        return 1

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        new_week = bars["time"].diff() > pd.Timedelta(hours=24)
        return pd.DataFrame(
            {"position": np.ones(len(bars), dtype=int), "entry": new_week & self.weekly}
        )


class StoppedBlocks(Blocks):
    """Blocks with a stop-loss 50 points away and half the volume on every entry."""

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        frame = super().signals(bars)
        frame["sl_distance"] = 0.0050
        frame["size"] = 0.5
        return frame


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_bars("EURUSD", "H1", 24 * 5 * 16, start="2024-01-08", seed=3)


def trades(bars, strategy, **rules):
    config = BacktestConfig(rules=TradingRules(zone=NY7, **rules))
    return run_backtest(bars, strategy, spec=SPEC, config=config).trades


def test_entries_only_in_the_trade_hours_of_the_broker_clock(bars):
    free = trades(bars, Blocks())
    limited = trades(bars, Blocks(), trade_hours=parse_hours("08:00-12:00"))
    entry_hours = NY7.local_times(limited["entry_time"]).dt.hour
    assert len(limited) >= 20 and entry_hours.between(8, 11).all()
    assert not NY7.local_times(free["entry_time"]).dt.hour.between(8, 11).all()


def test_no_position_is_held_over_a_weekend(bars):
    held = trades(bars, AlwaysLong())
    assert len(held) == 1  # one trade from start to end without the rule
    flat = trades(bars, AlwaysLong(weekly=True), flat_before_weekend_min=30)
    closes = FOREX_DEFAULT.week_closes(
        epoch_seconds(bars["time"])[0], bars["time"].iloc[-1].timestamp()
    )
    for trade in flat[flat["exit_reason"] != "end"].itertuples():
        entry, exit_ = trade.entry_time.timestamp(), trade.exit_time.timestamp()
        week_close = closes[closes > entry][0]
        assert exit_ <= week_close - 1800  # closed at the open of the bar holding the moment
        assert exit_ > week_close - 1800 - 3600
    assert len(flat) >= 14  # one trade a week


def test_a_refused_entry_is_not_taken_later(bars):
    """Entries refused outside the trade hours are not made when the hours open (they would
    come without the stop and size of the bar that asked): every trade has both."""
    limited = trades(bars, StoppedBlocks(length=7), trade_hours=parse_hours("08:00-12:00"))
    free = trades(bars, StoppedBlocks(length=7))
    assert len(limited) >= 10 and len(limited) < len(free) / 3
    assert limited["sl"].notna().all() and (limited["volume"] == free["volume"].iloc[0]).all()
    still_long = trades(bars, AlwaysLong(), flat_before_weekend_min=0)
    assert len(still_long) == 1  # flattened on the first Friday, not back without an entry
    assert still_long["exit_time"].iloc[0] < bars["time"].iloc[24 * 5]


def test_no_entry_in_the_first_minutes_of_a_session(bars):
    limited = trades(bars, Blocks(length=1), no_entry_after_open_min=90)
    stretches = FOREX_DEFAULT.stretches(
        bars["time"].iloc[0].timestamp(), bars["time"].iloc[-1].timestamp()
    )
    entries = limited["entry_time"].map(pd.Timestamp.timestamp).to_numpy()
    opened = stretches[1:, 0]  # the first is cut by the data's start
    since_open = entries[:, None] - opened[None, :]
    assert not ((since_open >= 0) & (since_open < 90 * 60)).any()
    assert len(limited) > 50


def test_news_blackouts_block_entries_and_can_flatten(bars):
    calendar = load_calendar(CALENDAR)
    rules = {"calendar": calendar, "news_before_min": 60, "news_after_min": 30}
    events = calendar[
        calendar["impact"].eq("high") & calendar["currency"].isin(["EUR", "USD", "ALL"])
    ]
    moments = events["time"].map(pd.Timestamp.timestamp).to_numpy()
    free = trades(bars, Blocks(length=1))
    blocked = trades(bars, Blocks(length=1), **rules)

    def entered_in_blackout(frame):
        entries = frame["entry_time"].map(pd.Timestamp.timestamp).to_numpy()
        gap = entries[:, None] - moments[None, :]
        return ((gap >= -3600) & (gap < 1800)).any(axis=1)

    assert entered_in_blackout(free).any() and not entered_in_blackout(blocked).any()
    flattened = trades(bars, AlwaysLong(weekly=True), news_flatten=True, **rules)
    for trade in flattened.itertuples():
        entry, exit_ = trade.entry_time.timestamp(), trade.exit_time.timestamp()
        inside = (moments + 1800 > entry) & (moments - 3600 < exit_)
        assert not inside.any(), trade


def test_deciding_bar_by_bar_equals_the_pass_over_all_bars(bars):
    """The live trader restricts the signals of the bars it has at each decision; its last
    row must be the backtest's row for that bar."""
    rules = TradingRules(
        zone=NY7,
        trade_hours=parse_hours("07:00-17:00"),
        no_entry_before_close_min=120,
        flat_before_weekend_min=45,
    )
    strategy = Blocks(length=3)
    raw = normalize_signals(strategy.signals(bars), len(bars))

    whole, _ = restrict_to_windows(rules, raw, bars, "EURUSD", ("EUR", "USD"))
    assert (whole.position != raw.position).any()
    windows = None
    for end in range(300, len(bars) - 1, 37):
        part = bars.iloc[end - 300 : end + 1]
        signals = normalize_signals(strategy.signals(bars.iloc[: end + 1]), end + 1).tail(301)
        forming = bars["time"].iloc[end + 1].timestamp()  # the bar open when it decides
        live, windows = restrict_to_windows(
            rules, signals, part, "EURUSD", ("EUR", "USD"), windows, forming
        )
        assert live.position[-1] == whole.position[end], part["time"].iloc[-1]


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--sessions", "EURUSD=Fri 10:00-Mon 08:00", "inverted"),
        (
            "--sessions",
            "EURUSD=Mon 00:00-Fri 23:00 break 10:00-12:00 break 11:00-13:00",
            "overlaps",
        ),
        ("--trade-hours", "08:00-12:00,11:00-14:00", "overlaps"),
        ("--trade-hours", "20:00-08:00", "inverted"),
        ("--news-impact", "huge", "huge"),
    ],
)
def test_bad_window_options_exit_2_naming_the_option(tmp_path, capsys, option, value, named):
    data = tmp_path / "EURUSD_H1.csv"
    save_csv(generate_bars("EURUSD", "H1", 200, start="2024-01-08"), data)
    code = main(["run", "--strategy", "backtest/strategies/sma_cross.py", "--data", str(data),
                 option, value])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and option in err and named in err


def test_a_bad_calendar_row_exits_2_naming_the_row(tmp_path, capsys):
    data = tmp_path / "EURUSD_H1.csv"
    save_csv(generate_bars("EURUSD", "H1", 200, start="2024-01-08"), data)
    calendar = tmp_path / "calendar.csv"
    calendar.write_text(
        "time,currency,impact,title\n2024-01-09 13:30,USD,high,CPI\n2024-01-10 25:99,USD,high,X\n"
    )
    code = main(["run", "--strategy", "backtest/strategies/sma_cross.py", "--data", str(data),
                 "--calendar", str(calendar), "--news-before", "30"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "line 3" in err and "25:99" in err


def test_a_refused_scale_in_stays_refused_and_a_trailing_window_keeps_what_is_held():
    """Outside the trade hours: a scale-in asked on a refused bar is not taken on the next
    bars either; a live trader's bars, all outside the hours, keep the position held."""
    hours = pd.date_range("2024-01-10 14:00", periods=4, freq="h", tz="UTC")  # 16:00 on NY+7
    bars = pd.DataFrame({"time": hours, "close": 1.1})
    raw = normalize_signals(
        pd.DataFrame({"position": [1, 1, 1, 1], "size": [0.5, 1.0, 1.0, 1.0]}), 4
    )
    rules = TradingRules(zone=NY7, trade_hours=parse_hours("08:00-12:00"))
    live, _ = restrict_to_windows(rules, raw, bars, "EURUSD", ("EUR", "USD"), held_at_start=True)
    assert live.position.tolist() == [1, 1, 1, 1]
    assert live.size[0] == 0.5 and np.isnan(live.size[1:]).all()
    fresh, _ = restrict_to_windows(rules, raw, bars, "EURUSD", ("EUR", "USD"))
    assert fresh.position.tolist() == [0, 0, 0, 0]  # from the start: the entry was refused


def test_session_names_match_in_any_case():
    from backtest.sessions import parse_sessions

    table = parse_sessions("XAUUSDm=Mon 01:00-Fri 23:00", NY7)
    assert table.for_symbol("XAUUSDm").open_minute == 24 * 60 + 60
    assert table.for_symbol("xauusdm") is table.for_symbol("XAUUSDM")
