"""Portfolio backtest: without limits it is the sum of the symbols' own runs; P/L of a cross
is converted through the pair of its profit currency (an error names it when missing); the
live trader's limits refuse entries in the live loop's order (open positions, total lots,
margin %), a refused entry is not taken later; risk sizing sizes on the account's equity;
bars that do not overlap stop the run; the command line names what is missing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, run_backtest
from backtest.portfolio import Limits, Member, PortfolioError, run_portfolio
from backtest.sizing import Sizing, SizingError
from backtest.strategy import Strategy, get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

SMA = "backtest/strategies/sma_cross.py"
CONFIG = BacktestConfig(cash=100_000.0, sizing=Sizing.fixed(1.0), spread_points=0.0)


def members(symbols, n=2_000, strategy=None, **bars_options):
    made = []
    for seed, symbol in enumerate(symbols, start=1):
        bars = generate_bars(symbol, "H1", n, seed=seed, **bars_options)
        chosen = strategy() if strategy else get_strategy_from_file(SMA)(fast=5, slow=20)
        made.append(Member(symbol, bars, get_symbol_spec(symbol), chosen, f"{symbol}.csv"))
    return made


def test_without_limits_the_account_is_the_sum_of_the_symbols_runs():
    group = members(["EURUSD", "GBPUSD", "USDJPY"])
    result = run_portfolio(group, CONFIG)
    alone = {m.symbol: run_backtest(m.bars, m.strategy, spec=m.spec, config=CONFIG) for m in group}
    total = sum(r.equity.to_numpy() - CONFIG.cash for r in alone.values()) + CONFIG.cash
    assert np.allclose(result.equity.to_numpy(), total)
    assert len(result.trades) == sum(len(r.trades) for r in alone.values())
    for row in result.breakdown.itertuples():
        assert row.pnl == pytest.approx(alone[row.symbol].trades["pnl"].sum(), abs=0.01)
    assert result.stats["equity_final"] == pytest.approx(total[-1])
    assert list(result.correlation.columns) == ["EURUSD", "GBPUSD", "USDJPY"]
    assert not result.refused


def test_a_cross_is_converted_through_its_profit_currencys_pair():
    group = members(["EURGBP", "GBPUSD"])
    result = run_portfolio(group, CONFIG)
    in_pounds = replace(CONFIG, account_currency="GBP")
    own = run_backtest(group[0].bars, group[0].strategy, spec=group[0].spec, config=in_pounds)
    gbpusd = group[1].bars.set_index("time")["close"]
    expected = own.trades["pnl"].to_numpy() * gbpusd.loc[own.trades["exit_time"]].to_numpy()
    crossed = result.trades[result.trades["symbol"] == "EURGBP"]
    assert np.allclose(crossed["pnl"].to_numpy(), expected)
    with pytest.raises(PortfolioError, match=r"EURGBP \(EURGBP.csv\): no conversion rate from "
                       r"GBP to USD: add GBPUSD or USDGBP"):  # fmt: skip
        run_portfolio(members(["EURGBP", "EURUSD"]), CONFIG)


class AlwaysLong(Strategy):
    """Long from the second bar, out every `every` bars for one bar."""

    every: int = 50

    def signals(self, bars):
        index = np.arange(len(bars))
        return pd.DataFrame({"position": np.where((index % self.every) == 0, 0, 1)})


def open_counts(result) -> np.ndarray:
    times = result.equity.index.asi8
    change = np.zeros(len(times) + 1)
    for trade in result.trades.itertuples():
        change[np.searchsorted(times, trade.entry_time.value)] += 1
        change[np.searchsorted(times, trade.exit_time.value)] -= 1
    return np.cumsum(change[:-1])


def test_limits_refuse_entries_in_the_live_loops_order():
    group = members(["EURUSD", "GBPUSD"], strategy=AlwaysLong)
    free = run_portfolio(group, CONFIG)
    assert open_counts(free).max() == 2
    one = run_portfolio(group, CONFIG, Limits(max_open_positions=1))
    assert open_counts(one).max() == 1 and one.refused
    # both enter on the same bars: the first symbol given is taken, the second refused
    assert {r["symbol"] for r in one.refused} == {"GBPUSD"}
    assert one.refused[0]["reason"] == "MAX_OPEN_POSITIONS 1 reached"
    assert (one.results["GBPUSD"].trades.empty
            or len(one.results["GBPUSD"].trades) < len(free.results["GBPUSD"].trades))  # fmt: skip
    lots = run_portfolio(group, CONFIG, Limits(max_total_lots=1.5))
    assert open_counts(lots).max() == 1 and "MAX_TOTAL_LOTS 1.5" in lots.refused[0]["reason"]


def test_the_margin_limit_counts_the_open_positions_margin_against_equity():
    """1 lot of EURUSD near 1.10 at 1:100 needs about 1,100 USD: on 10,000 at most 15% of
    equity allows one position, not two."""
    group = members(["EURUSD", "GBPUSD"], strategy=AlwaysLong)
    small = replace(CONFIG, cash=10_000.0)
    one = run_portfolio(group, small, Limits(max_margin_pct=15.0, leverage=100))
    assert open_counts(one).max() == 1
    assert "MAX_MARGIN_PCT 15% would be exceeded" in one.refused[0]["reason"]
    both = run_portfolio(group, small, Limits(max_margin_pct=40.0, leverage=100))
    assert open_counts(both).max() == 2


def test_bars_that_do_not_overlap_stop_the_run():
    early = members(["EURUSD"], start="2020-01-06")
    late = members(["GBPUSD"], start="2022-01-03")
    words = r"EURUSD \(EURUSD.csv\): its bars \(2020-01-06 to 2020-.*\) do not overlap those of "
    with pytest.raises(PortfolioError, match=words + r"GBPUSD \(GBPUSD.csv\), 2022-01-03"):
        run_portfolio(early + late, CONFIG)


def test_the_command_line_runs_a_folder_of_symbols_and_names_what_is_missing(tmp_path, capsys):
    import json

    from backtest.cli import main
    from backtest.data import save_csv

    for seed, symbol in enumerate(["EURUSD", "USDJPY", "EURGBP"]):
        save_csv(generate_bars(symbol, "H1", 1_500, seed=seed), tmp_path / f"{symbol}_H1.csv")
    out = tmp_path / "run.json"
    args = ["run", "--strategy", SMA, "--data-dir", str(tmp_path), "--lots", "0.1"]
    assert main([*args, "--symbols", "EURUSD,USDJPY", "--max-open-positions", "1",
                 "--json", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "per symbol:" in printed and "MAX_OPEN_POSITIONS 1 reached" in printed
    document = json.loads(out.read_text())
    assert [row["symbol"] for row in document["breakdown"]] == ["EURUSD", "USDJPY"]
    assert document["refused"] and set(document["contributions_final"]) == {"EURUSD", "USDJPY"}
    later = generate_bars("AUDUSD", "H1", 500, start="2023-01-02")
    save_csv(later, tmp_path / "AUDUSD_H1.csv")
    for symbols, words in (
        ("EURUSD,GBPUSD", f"GBPUSD: no bars in {tmp_path}"),
        ("EURUSD,AUDUSD", "AUDUSD_H1.csv), 2023-01-02 to 2023-01-"),
        ("EURUSD,EURGBP", "EURGBP_H1.csv): no conversion rate from GBP to USD"),
        ("EURUSD,EURUSD", "--symbols: give distinct symbols"),
    ):
        assert main([*args, "--symbols", symbols]) == 2
        assert words in capsys.readouterr().err
    assert main([*args, "--symbols", "EURUSD", "--rules", "static_5_10"]) == 2
    assert "--rules: not available with --symbols" in capsys.readouterr().err


def test_risk_sizing_sizes_each_entry_on_the_accounts_equity():
    """--risk in a portfolio: a symbol alone is sized as the engine sizes it (on the balance
    before each trade: nothing else is open); beside another symbol, on the account's
    equity, so the same entries get other volumes; every volume on the symbol's step."""
    rsi = get_strategy_from_file("backtest/strategies/rsi_reversion.py")
    risk = replace(CONFIG, sizing=Sizing(mode="risk", risk_percent=1.0), cash=10_000.0)
    alone = members(["EURUSD"], strategy=rsi)
    by_engine = run_backtest(alone[0].bars, alone[0].strategy, spec=alone[0].spec, config=risk)
    by_account = run_portfolio(alone, risk).trades
    assert len(by_engine.trades) > 10
    assert by_account["volume"].tolist() == by_engine.trades["volume"].tolist()
    assert np.allclose(by_account["pnl"], by_engine.trades["pnl"], atol=0.011)
    pair = members(["EURUSD", "GBPUSD"], strategy=rsi)
    shared = run_portfolio(pair, risk)
    euro = shared.trades[shared.trades["symbol"] == "EURUSD"]
    assert euro["volume"].tolist() != by_engine.trades["volume"].tolist()
    steps = shared.trades["volume"].to_numpy() / 0.01
    assert np.allclose(steps, np.round(steps))
    final = shared.equity.iloc[-1] - risk.cash
    assert final == pytest.approx(shared.trades["pnl"].sum(), abs=0.05)
    no_stop = members(["EURUSD"])
    with pytest.raises(SizingError, match="risk sizing needs a stop-loss: EURUSD's entry"):
        run_portfolio(no_stop, risk)
