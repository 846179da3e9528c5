"""A prop-firm challenge on a backtest's equity path: a dip through a floor inside one bar
breaches, days reset at the named zone's midnight across a daylight-saving switch, a loss
held across the reset breaches on a balance base, a trailing floor only rises and locks,
pause and fail differ, and targets pass with their minimum trading days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.broker_clock import parse_zone
from backtest.challenge import evaluate
from backtest.engine import BacktestConfig, run_backtest
from backtest.prop_rules import DailyFloor, MaxLoss, Preset, Reset
from backtest.sizing import Sizing
from backtest.strategy import Strategy
from backtest.symbols import get_symbol_spec

SPEC = get_symbol_spec("EURUSD")  # 1 lot: 0.01 of price is 1,000 USD
CASH = 100_000.0
PRAGUE = Reset(0, 0, "Europe/Prague")


def holding(rows: list[int], total: int = 0, *, sl: float = np.nan, tp: float = np.nan):
    """A strategy long on the given rows (each decision acts at the next bar's open), with
    fixed stop-loss and take-profit levels when given."""

    class Holding(Strategy):
        @property
        def warmup(self) -> int:
            return 1

        def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
            wanted = np.zeros(len(bars), dtype=int)
            wanted[rows] = 1
            return pd.DataFrame({"position": wanted, "sl": sl, "tp": tp})

    return Holding()


def hourly(start: str, prices: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """Bars an hour apart from `start` (UTC) from (open, high, low, close) rows."""
    o, h, lo, c = (np.array(column) for column in zip(*prices, strict=True))
    return pd.DataFrame(
        {
            "time": pd.date_range(start, periods=len(prices), freq="h", tz="UTC"),
            "open": o, "high": h, "low": lo, "close": c,
            "tick_volume": 1, "spread": 0,
        }
    )  # fmt: skip


def flat(price: float, n: int) -> list[tuple[float, float, float, float]]:
    return [(price, price, price, price)] * n


def challenge(preset: Preset, bars: pd.DataFrame, rows: list[int] | None = None):
    rows = list(range(len(bars))) if rows is None else rows
    config = BacktestConfig(cash=CASH, sizing=Sizing.fixed(1.0), spread_points=0.0)
    result = run_backtest(bars, holding(rows, len(bars)), spec=SPEC, config=config)
    return evaluate(preset, result, bars, SPEC, cash=CASH, broker_zone=parse_zone("NY+7"))


def test_a_dip_through_the_floor_inside_one_bar_breaches():
    dip = (1.10, 1.10, 1.044, 1.10)  # 5,600 under water at its low, back by its close
    bars = hourly("2024-01-08 08:00", [*flat(1.10, 3), dip, *flat(1.10, 3)])
    rule = Preset("daily", daily_floor=DailyFloor(limit_pct=5.0, reset=PRAGUE))
    report = challenge(rule, bars)
    assert report.outcome == "failed" and report.breach.rule == "daily floor"  # in at bar 1
    assert report.breach.time == bars["time"].iloc[3]
    assert report.breach.floor == pytest.approx(95_000.0)
    shallow = challenge(rule, bars.assign(low=np.maximum(bars["low"], 1.052)))
    assert shallow.outcome == "open" and shallow.breach is None


@pytest.mark.parametrize("start", ["2024-01-10 19:00", "2024-04-10 18:00"])
def test_the_day_resets_at_the_zones_midnight_across_a_switch(start):
    """A 4% loss closed just before the Prague midnight (23:00 UTC in winter, 22:00 from
    March 31), 3% more just after: two days and no breach of a 5% daily floor; with the
    day cut at UTC midnight both fall in one day and it breaches."""
    prices = [
        (1.10, 1.10, 1.10, 1.10),
        (1.10, 1.10, 1.08, 1.08),
        (1.08, 1.08, 1.06, 1.06),
        (1.06, 1.06, 1.06, 1.06),  # the first trade closes at this open: -4,000
        (1.06, 1.06, 1.04, 1.04),  # the second opens here, on the Prague midnight
        (1.04, 1.04, 1.03, 1.03),
        (1.03, 1.03, 1.03, 1.03),  # ...and closes here: -3,000
        (1.03, 1.03, 1.03, 1.03),
    ]
    bars = hourly(start, prices)
    assert bars["time"].iloc[4].tz_convert("Europe/Prague").hour == 0
    rows = [0, 1, 3, 4]

    def rule(zone: str) -> Preset:
        return Preset("d", daily_floor=DailyFloor(limit_pct=5.0, reset=Reset(0, 0, zone)))

    assert challenge(rule("Europe/Prague"), bars, rows).breach is None
    cut_at_utc = challenge(rule("UTC"), bars, rows)
    assert cut_at_utc.outcome == "failed" and cut_at_utc.breach.time == bars["time"].iloc[4]


def test_a_floating_loss_held_over_the_reset_breaches_on_a_balance_base():
    prices = [*flat(1.10, 2), (1.10, 1.10, 1.058, 1.058), *flat(1.058, 2)]  # -4,200 floating
    prices += [(1.058, 1.058, 1.050, 1.050), *flat(1.050, 2)]  # -800 more after the reset
    bars = hourly("2024-01-10 20:00", prices)  # the Prague midnight falls at 23:00 UTC
    on_balance = Preset("b", daily_floor=DailyFloor(limit_pct=4.5, day_base="balance",
                                                    reset=PRAGUE))  # fmt: skip
    on_equity = Preset("e", daily_floor=DailyFloor(limit_pct=4.5, day_base="equity",
                                                   reset=PRAGUE))  # fmt: skip
    trapped = challenge(on_balance, bars)
    assert trapped.outcome == "failed"
    assert trapped.breach.time > pd.Timestamp("2024-01-10 23:00", tz="UTC")
    assert challenge(on_equity, bars).outcome == "open"


def test_a_trailing_floor_only_rises_and_locks_at_the_initial_balance():
    """12% won and closed on the first broker day (it ends at 22:00 UTC on NY+7), then in
    again and down 11% inside a bar: the floor trails that day's closing balance
    (112,000 - 10,000) and only rises; locked, it stops at the initial balance."""
    prices = [
        (1.10, 1.10, 1.10, 1.10),
        (1.10, 1.16, 1.10, 1.16),
        (1.16, 1.22, 1.16, 1.22),
        *flat(1.22, 4),  # closed at the first of these: +12,000
        (1.22, 1.22, 1.11, 1.22),  # 23:00, the next broker day: in at 1.22, dips to 1.11
        *flat(1.22, 2),
    ]
    bars = hourly("2024-01-08 16:00", prices)
    rows = [0, 1, 6, 7, 8]

    def rule(**options: object) -> Preset:
        return Preset("t", max_loss=MaxLoss(limit_amount=10_000, **options))

    trailing = challenge(rule(mode="trailing"), bars, rows)
    assert trailing.outcome == "failed" and trailing.breach.floor == pytest.approx(102_000)
    assert trailing.breach.time == bars["time"].iloc[7]
    assert challenge(rule(mode="trailing", lock_at_initial=True), bars, rows).breach is None
    assert challenge(rule(mode="static"), bars, rows).breach is None


def test_pause_and_fail_differ():
    dip = (1.10, 1.10, 1.04, 1.10)
    bars = hourly("2024-01-08 08:00", [*flat(1.10, 3), dip, *flat(1.10, 3)])
    fail = challenge(Preset("f", daily_floor=DailyFloor(limit_pct=5.0, effect="fail")), bars)
    pause = challenge(Preset("p", daily_floor=DailyFloor(limit_pct=5.0, effect="pause")), bars)
    assert fail.outcome == "failed" and fail.paused_days == 0
    assert pause.outcome == "open" and pause.breach is None and pause.paused_days == 1


def test_targets_pass_on_closed_balance_with_their_minimum_trading_days():
    rising = [(1.10 + k * 0.001,) * 4 for k in range(60)]
    bars = hourly("2024-01-08 00:00", rising)
    rows = [*range(0, 20), *range(30, 50)]  # two trades, on two broker days (22:00 UTC)
    easy = challenge(Preset("x", targets_pct=(1.0, 1.0), min_trading_days=1), bars, rows)
    assert easy.outcome == "passed" and easy.trading_days == 2
    first = easy.phases[0]["passed_at"]
    assert first == bars["time"].iloc[21]  # closed at that open, nothing held: +2,000
    held = challenge(Preset("h", targets_pct=(1.0,)), bars, list(range(60)))
    # well above the target for days, but open: reached only when closed at the end
    assert held.phases[0]["passed_at"] == bars["time"].iloc[-1]
    strict = challenge(Preset("y", targets_pct=(1.0,), min_trading_days=3), bars, rows)
    assert strict.outcome == "open"


def test_the_command_line_reports_the_challenge_and_refuses_a_bad_preset(tmp_path, capsys):
    import json

    from backtest.cli import main

    out = tmp_path / "run.json"
    args = ["run", "--strategy", "backtest/strategies/sma_cross.py", "--synthetic", "3000",
            "--lots", "1", "--broker-tz", "NY+7"]  # fmt: skip
    assert main([*args, "--rules", "static_5_10", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "challenge static_5_10: FAILED" in printed and "daily floor" in printed
    document = json.loads(out.read_text())
    assert document["challenge"]["outcome"] == "failed"
    assert document["challenge"]["breach"]["rule"] == "daily floor"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[daily_floor]\nlimit_pct = -5\n')
    assert main([*args, "--rules", str(bad)]) == 2
    err = capsys.readouterr()
    assert "limit_pct" in err.err and "bad.toml" in err.err and "challenge" not in err.out


def _mc_run(step: float, n: int = 120):
    """Alternating one-bar trades on a price that moves `step` per bar (all win or all lose)."""
    prices = [(1.10 + k * step,) * 4 for k in range(n)]
    bars = hourly("2024-01-08 00:00", prices)
    rows = list(range(0, n - 2, 3))
    config = BacktestConfig(cash=CASH, sizing=Sizing.fixed(1.0), spread_points=0.0)
    result = run_backtest(bars, holding(rows, n), spec=SPEC, config=config)
    return result, bars


def test_the_pass_probability_is_seeded_and_bounded():
    from backtest.challenge_mc import pass_probability

    preset = Preset(
        "p",
        daily_floor=DailyFloor(limit_pct=5.0, reset=PRAGUE),
        max_loss=MaxLoss(limit_pct=10.0),
        targets_pct=(2.0,),
        min_trading_days=1,
    )
    zone = parse_zone("NY+7")
    winning, bars = _mc_run(0.001)
    sure = pass_probability(preset, winning, bars, SPEC, cash=CASH, broker_zone=zone, paths=500)
    # each trade wins 100 (0.001 on a lot): 2% of 100,000 takes 20 of them
    assert sure.probability == 1.0 and sure.failed == 0 and sure.median_trades_to_pass == 20
    losing, falling = _mc_run(-0.003)
    lost = pass_probability(preset, losing, falling, SPEC, cash=CASH, broker_zone=zone, paths=500)
    assert lost.probability == 0.0 and lost.failed == 500
    mixed = winning.trades.copy()
    mixed.loc[mixed.index[::2], "pnl"] *= -0.6  # half the trades lose 60, half win 100
    coin = type(winning)(**{**vars(winning), "trades": mixed})
    preset = Preset("c", max_loss=MaxLoss(limit_pct=1.0), targets_pct=(1.0,), min_trading_days=1)
    one = pass_probability(
        preset, coin, bars, SPEC, cash=CASH, broker_zone=zone, paths=2000, seed=3
    )
    again = pass_probability(
        preset, coin, bars, SPEC, cash=CASH, broker_zone=zone, paths=2000, seed=3
    )
    other = pass_probability(
        preset, coin, bars, SPEC, cash=CASH, broker_zone=zone, paths=2000, seed=4
    )
    assert one == again and 0.0 < one.probability < 1.0 and one.passed != other.passed
    low, high = one.interval
    assert low < one.probability < high and high - low < 0.05


def test_a_phase_not_passed_within_its_time_limit_fails():
    """+10% closed on the third NY+7 day: within a 3-day limit it passes; with a 2-day
    limit the challenge fails when the third day starts, the target not reached."""
    prices = [*flat(1.10, 60), (1.10, 1.21, 1.10, 1.21), *flat(1.21, 30)]  # in, then +11,000
    bars = hourly("2024-01-08 22:00", prices)  # a NY+7 day starts at 22:00 UTC in winter
    rows = list(range(61))  # closed at the open of bar 62, Jan 11 12:00 UTC: the third day

    def rule(days: int) -> Preset:
        return Preset("t", targets_pct=(10.0,), max_days=days)

    assert challenge(rule(3), bars, rows).outcome == "passed"
    late = challenge(rule(2), bars, rows)
    assert late.outcome == "failed" and late.breach.rule == "time limit"
    assert late.breach.time == pd.Timestamp("2024-01-10 22:00", tz="UTC")
    assert "time limit passed" in "\n".join(late.lines())


def test_a_presets_windows_govern_the_run(tmp_path, capsys):
    """`[windows] flat_before_weekend_min = 120` in the preset trades the run as
    `--flat-before-weekend 120` does: the same trades, which differ from the run without."""
    import json

    from backtest.cli import main

    preset = tmp_path / "flat.toml"
    preset.write_text("[windows]\nflat_before_weekend_min = 120\n")
    args = ["run", "--strategy", "backtest/strategies/sma_cross.py", "--synthetic", "3000",
            "--lots", "1", "--broker-tz", "NY+7"]  # fmt: skip

    def trades(*extra: str) -> list:
        out = tmp_path / "run.json"
        assert main([*args, *extra, "--json", str(out)]) == 0
        return json.loads(out.read_text())["trades"]

    by_preset = trades("--rules", str(preset))
    assert by_preset == trades("--flat-before-weekend", "120")
    assert by_preset != trades()
    capsys.readouterr()


def test_touching_the_floor_is_a_breach_as_live():
    """Exactly at the floor counts (firms fail an account that touches its limit; the live
    guard acts at equity <= its stop too). Prices exact in binary: 6,250 under water."""
    touch = (1.25, 1.25, 1.1875, 1.25)
    bars = hourly("2024-01-08 08:00", [*flat(1.25, 3), touch, *flat(1.25, 3)])
    floor = Preset("touch", daily_floor=DailyFloor(limit_amount=6_250.0, reset=PRAGUE))
    report = challenge(floor, bars)
    assert report.outcome == "failed" and report.breach.equity == report.breach.floor == 93_750.0
    below = Preset("below", daily_floor=DailyFloor(limit_amount=6_250.5, reset=PRAGUE))
    assert challenge(below, bars).breach is None


def test_the_bar_a_stop_closes_in_counts_from_the_exit_not_the_close():
    """A stop-loss at 1.095 fills first: the bar's low of 1.05 below it costs nothing more
    (equity 99,500, no breach of a floor at 99,000). A take-profit at 1.11 reached after a
    dip to 1.09 (the nearer extreme comes first) counts that dip: equity 99,000 on the way."""
    config = BacktestConfig(cash=CASH, sizing=Sizing.fixed(1.0), spread_points=0.0)
    zone = parse_zone("NY+7")
    stopped = hourly("2024-01-08 08:00", [*flat(1.10, 3), (1.10, 1.10, 1.05, 1.06), *flat(1.06, 3)])
    run = run_backtest(stopped, holding([0, 1, 2, 3], sl=1.095), spec=SPEC, config=config)
    assert run.trades["exit_reason"].tolist() == ["sl"]
    floor = Preset("f", daily_floor=DailyFloor(limit_amount=1_000.0, reset=PRAGUE))
    assert evaluate(floor, run, stopped, SPEC, cash=CASH, broker_zone=zone).breach is None
    target = hourly(
        "2024-01-08 08:00", [*flat(1.10, 3), (1.10, 1.12, 1.09, 1.115), *flat(1.115, 3)]
    )
    run = run_backtest(target, holding([0, 1, 2, 3], tp=1.11), spec=SPEC, config=config)
    assert run.trades["exit_reason"].tolist() == ["tp"]
    tight = Preset("t", daily_floor=DailyFloor(limit_amount=500.0, reset=PRAGUE))
    report = evaluate(tight, run, target, SPEC, cash=CASH, broker_zone=zone)
    assert report.breach.equity == pytest.approx(99_000.0)


@pytest.mark.parametrize("name", ["sma_cross", "breakeven_partial"])
def test_the_engines_arrays_and_the_trades_table_give_one_verdict(name):
    """The challenge reads the engine's trade arrays; a result without them (built by hand,
    or its table replaced) is read from the table: every preset's report is the same, for
    a plain run and for one with partial exits."""
    from dataclasses import replace
    from pathlib import Path

    from backtest.prop_rules import list_presets, load_preset
    from backtest.strategy import get_strategy_from_file
    from backtest.synthetic import generate_bars

    zone = parse_zone("NY+7")
    bars = generate_bars("EURUSD", "H1", 3_000, seed=3)
    folder = Path(__file__).resolve().parents[2] / "backtest" / "strategies"
    strategy = get_strategy_from_file(folder / f"{name}.py")()
    config = BacktestConfig(cash=CASH, sizing=Sizing.fixed(5.0))
    result = run_backtest(bars, strategy, spec=SPEC, config=config)
    assert result.trade_arrays is not None and len(result.trade_arrays) == len(result.trades)
    table_only = replace(result, trade_arrays=None)
    outcomes = set()
    for preset in map(load_preset, list_presets()):
        fast = evaluate(preset, result, bars, SPEC, cash=CASH, broker_zone=zone)
        slow = evaluate(preset, table_only, bars, SPEC, cash=CASH, broker_zone=zone)
        assert fast.as_dict() == slow.as_dict()
        outcomes.add(fast.outcome)
    assert outcomes - {"open"}  # a verdict was reached, not only "still open"


def test_the_trading_days_of_other_bars_with_the_same_ends_are_not_reused():
    """Days are remembered for the last bar times (a grid runs on the same bars). Bars with
    the same count, first and last time but moved in between get their own days: the two
    losses of the reset test, brought before the Prague midnight, fall on one day."""
    prices = [
        (1.10, 1.10, 1.10, 1.10),
        (1.10, 1.10, 1.08, 1.08),
        (1.08, 1.08, 1.06, 1.06),
        (1.06, 1.06, 1.06, 1.06),  # the first trade closes at this open: -4,000
        (1.06, 1.06, 1.04, 1.04),
        (1.04, 1.04, 1.03, 1.03),
        (1.03, 1.03, 1.03, 1.03),  # ...the second closes here: -3,000
        (1.03, 1.03, 1.03, 1.03),
    ]
    two_days = hourly("2024-01-10 19:00", prices)
    one_day = two_days.copy()
    one_day.loc[1:6, "time"] = two_days["time"].iloc[0] + pd.to_timedelta(
        np.arange(1, 7) * 10, unit="min"
    )  # 19:10 to 20:00 UTC: all before the Prague midnight (23:00 UTC)
    rule = Preset("d", daily_floor=DailyFloor(limit_pct=5.0, reset=PRAGUE))
    rows = [0, 1, 3, 4]
    for _ in range(2):
        assert challenge(rule, two_days, rows).breach is None
        assert challenge(rule, one_day, rows).outcome == "failed"


def daily_longs(moves: list[float]) -> tuple[pd.DataFrame, list[int]]:
    """Hourly bars over as many days as `moves`, from a Tuesday 08:00 UTC: each day a long
    entered at 09:00 and closed at 11:00 after the price moved by that day's move (1 lot:
    0.01 is 1,000 USD). The bars and the rows the strategy is long on."""
    prices, rows, price = [], [], 1.10
    for day, move in enumerate(moves):
        after = price + move
        low, high = min(price, after), max(price, after)
        prices += [(price,) * 4, (price, high, low, after), (after,) * 4]
        prices += flat(after, 21)
        rows += [24 * day, 24 * day + 1]
        price = after
    return hourly("2024-01-09 08:00", prices), rows


def test_a_breach_after_the_pass_is_not_the_challenges():
    """Passed on day 1 (+6% with a 5% target); a 7% loss on day 2 breaches the daily floor
    of a funded account, not of the challenge: passed, no breach, one trading day."""
    bars, rows = daily_longs([0.06, -0.07])
    rule = Preset("p", daily_floor=DailyFloor(limit_pct=5.0, reset=PRAGUE), targets_pct=(5.0,))
    report = challenge(rule, bars, rows)
    assert report.outcome == "passed" and report.breach is None
    assert report.phases[0]["passed_at"] == bars["time"].iloc[3] and report.trading_days == 1
    failing = challenge(replace_preset(rule, targets_pct=(8.0,)), bars, rows)
    assert failing.outcome == "failed" and failing.breach.rule == "daily floor"


def replace_preset(preset: Preset, **changes) -> Preset:
    from dataclasses import replace

    return replace(preset, **changes)


def test_consistency_holds_the_pass_until_the_best_day_is_diluted():
    """Target 5%, best day at most 50% of the profit: +6% on day 1 reaches the target but
    that day is all the profit; +1% on day 2 makes it 86%; +5% on day 3 makes it exactly
    50%: the pass comes on day 3, with that ratio."""
    bars, rows = daily_longs([0.06, 0.01, 0.05])
    rule = Preset("c", targets_pct=(5.0,), consistency_pct=50.0)
    report = challenge(rule, bars, rows)
    assert report.outcome == "passed"
    assert report.phases[0]["passed_at"] == bars["time"].iloc[24 * 2 + 3]
    assert report.consistency_ratio == pytest.approx(0.5)
    strict = challenge(replace_preset(rule, consistency_pct=45.0), bars, rows)
    assert strict.outcome == "open" and strict.phases[0]["passed_at"] is None
    assert strict.consistency_ratio == pytest.approx(0.5)


def test_the_bootstrap_keeps_the_consistency_rule_and_the_time_limit():
    """Two trades on two days: +6,000 and +100. With a 5% target, of the four equally likely
    paths three reach it; with the best day at most 50% of the profit only (6,000, 6,000)
    passes (on its second day); with a one-day limit only paths drawing 6,000 first pass,
    the others run out of time and fail."""
    from backtest.challenge_mc import pass_probability

    bars, rows = daily_longs([0.06, 0.001])
    config = BacktestConfig(cash=CASH, sizing=Sizing.fixed(1.0), spread_points=0.0)
    result = run_backtest(bars, holding(rows, len(bars)), spec=SPEC, config=config)
    assert list(result.trades["pnl"]) == [6000.0, 100.0]
    zone = parse_zone("NY+7")

    def chances(**rules):
        preset = Preset("m", targets_pct=(5.0,), **rules)
        return pass_probability(
            preset, result, bars, SPEC, cash=CASH, broker_zone=zone, paths=4000, seed=2
        )

    free, consistent, timed = chances(), chances(consistency_pct=50.0), chances(max_days=1)
    assert free.probability == pytest.approx(0.75, abs=0.03) and free.failed == 0
    assert consistent.probability == pytest.approx(0.25, abs=0.03) and consistent.failed == 0
    assert timed.probability == pytest.approx(0.5, abs=0.03)
    assert timed.failed == timed.paths - timed.passed
