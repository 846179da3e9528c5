"""The minimum trade duration as a signal transform: an exit asked sooner waits for the first
decision acting late enough, then acts as the strategy wants then; a reversal enters the
other way there; a return to the held side never exits; re-entries and partial exits wait
too; a position held from before the bars is old enough; in a backtest every signal exit
comes late enough while a stop does not wait."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, run_backtest
from backtest.min_hold import hold_minimum
from backtest.signals import normalize_signals
from backtest.sizing import Sizing
from backtest.strategy import Strategy
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from backtest.trading_windows import TradingRules

MINUTE = 60
ACTING = np.arange(1, 13) * MINUTE  # bar i's decision acts at the next minute's open


def held(position, seconds=150.0, **columns):
    signals = normalize_signals(pd.DataFrame({"position": position, **columns}), len(position))
    return hold_minimum(signals, ACTING[: len(position)], seconds, held_at_start=False)


def test_an_exit_asked_sooner_waits_for_the_first_open_late_enough():
    # entered at 60 s (bar 0's decision); flat asked at bar 1 (acts at 120 s): 150 s needs
    # the open at 240 s, bar 3's decision
    out = held([1, 0, 0, 0, 0, 0])
    assert list(out.position) == [1, 1, 1, 0, 0, 0]
    assert list(held([1, 0, 0, 0, 0, 0], seconds=60.0).position) == [1, 0, 0, 0, 0, 0]


def test_a_reversal_waits_then_enters_the_other_way():
    assert list(held([1, -1, -1, -1, -1]).position) == [1, 1, 1, -1, -1]


def test_the_strategy_back_on_the_held_side_before_the_end_never_exits():
    out = held([1, 0, 0, 1, 1, 0, 0])
    assert list(out.position) == [1, 1, 1, 1, 1, 0, 0]  # the exit at bar 5 is late enough


def test_a_new_entry_restarts_the_clock():
    # flat at bar 3 (allowed), long again at bar 4 (acts at 300 s): kept until 450 s
    out = held([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    assert list(out.position) == [1, 1, 1, 0, 1, 1, 1, 0, 0, 0]


def test_a_re_entry_and_a_partial_exit_wait_too():
    entry = [True, True, False, False, False]
    out = held([1, 1, 1, 1, 1], entry=entry)
    assert list(out.entry) == [True, False, False, False, False]
    size = [1.0, 0.5, 0.5, 0.5, 0.5]
    out = held([1, 1, 1, 1, 1], size=size)
    assert list(out.size) == [1.0, 1.0, 1.0, 0.5, 0.5]


def test_a_position_held_from_before_the_bars_is_old_enough():
    signals = normalize_signals(pd.DataFrame({"position": [1, 0, 0]}), 3)
    assert list(hold_minimum(signals, ACTING[:3], 150.0, held_at_start=True).position) == [1, 0, 0]
    assert hold_minimum(signals, ACTING[:3], 0.0) is signals


class Flipper(Strategy):
    """Reverses every bar, with a stop 5 pips away on each entry."""

    warmup = 1

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        side = np.where(np.arange(len(bars)) % 2 == 0, 1, -1)
        return pd.DataFrame({"position": side, "sl_distance": 0.0005})


@pytest.mark.parametrize("minutes", [1, 3, 10])
def test_in_a_backtest_signal_exits_come_late_enough_and_stops_do_not_wait(minutes):
    bars = generate_bars("EURUSD", "M1", 3_000, seed=4)
    spec = get_symbol_spec("EURUSD")
    seconds = minutes * MINUTE

    def run(rules):
        config = BacktestConfig(cash=100_000.0, sizing=Sizing.fixed(1.0), rules=rules)
        return run_backtest(bars, Flipper(), spec=spec, config=config).trades

    free, kept = run(TradingRules()), run(TradingRules(min_trade_seconds=seconds))
    held_for = (kept["exit_time"] - kept["entry_time"]).dt.total_seconds()
    by_signal = kept["exit_reason"].isin(["signal"])
    assert (held_for[by_signal] >= seconds).all()
    assert (held_for[kept["exit_reason"] == "sl"] < seconds).any()  # stops do not wait
    if minutes > 1:
        assert len(kept) < len(free)
    else:  # every exit is a minute after its entry already
        assert len(kept) == len(free)


def test_the_command_line_takes_it_from_the_option_or_the_preset(tmp_path, capsys):
    """--min-trade-seconds, or a --rules preset's [exposure] min_trade_seconds, hold the
    run's positions; a negative value exits 2 naming the option."""
    import json

    from backtest.cli import main

    strategy = tmp_path / "flipper.py"
    strategy.write_text(
        "import numpy as np, pandas as pd\nfrom backtest.strategy import Strategy\n\n"
        "class Flipper(Strategy):\n    warmup = 1\n\n    def signals(self, bars):\n"
        "        return pd.DataFrame({'position': np.where(np.arange(len(bars)) % 2, -1, 1)})\n"
    )
    args = ["run", "--strategy", str(strategy), "--synthetic", "600", "--timeframe", "M1"]

    def run(*extra):
        out = tmp_path / "run.json"
        assert main([*args, *extra, "--json", str(out)]) == 0
        document = json.loads(out.read_text())
        return document["config"]["rules"]["min_trade_seconds"], document["trades"]

    preset = tmp_path / "hold.toml"
    preset.write_text("[exposure]\nmin_trade_seconds = 300\n")
    (none, free), (by_option, held) = run(), run("--min-trade-seconds", "300")
    assert (none, by_option) == (0.0, 300.0) and len(held) < len(free) / 3
    assert run("--rules", str(preset)) == (300.0, held)
    assert main([*args, "--min-trade-seconds", "-5"]) == 2
    assert "--min-trade-seconds" in capsys.readouterr().err
