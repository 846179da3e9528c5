"""The HTML report, rendered in a real headless Chromium from file://, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, run_backtest
from backtest.report import MAX_CANDLES, embed_json, write_report
from backtest.report_runs import write_walkforward_report
from backtest.strategy import Strategy, get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]
RsiReversion = get_strategy_from_file(ROOT / "backtest" / "strategies" / "rsi_reversion.py")
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'

pytestmark = pytest.mark.browser


class Xss(Strategy):
    """A strategy whose name and parameter carry markup; both must stay text."""

    name = XSS
    note: str = XSS

    def signals(self, bars):
        return pd.Series((bars["close"] > bars["close"].rolling(20).mean()).astype(int))


def report_for(strategy, bars, path, spec_name="EURUSD"):
    spec = get_symbol_spec("EURUSD").with_overrides(name=spec_name)
    config = BacktestConfig()
    result = run_backtest(bars, strategy, spec=spec, config=config)
    write_report(result, bars, path, config=config)
    return result


def open_report(page_probe, path):
    probe = page_probe()
    probe.page.goto(path.as_uri())
    probe.page.wait_for_function("window.__reportReady === true", timeout=15_000)
    return probe


def assert_drawn(page, *charts: str) -> None:
    """Each chart drew a canvas of a real size."""
    for chart in charts:
        sizes = page.eval_on_selector_all(
            f"{chart} canvas",
            "els => els.map(e => e.getBoundingClientRect().width * "
            "e.getBoundingClientRect().height)",
        )
        assert sizes and max(sizes) > 10_000, chart


def test_report_renders_offline_with_the_right_numbers(page_probe, tmp_path):
    bars = generate_bars("EURUSD", "H1", 3000, seed=4)
    path = tmp_path / "report.html"
    result = report_for(RsiReversion(), bars, path)
    probe = open_report(page_probe, path)
    page = probe.page
    assert probe.errors == [] and probe.blocked == []
    sizes = page.eval_on_selector_all(
        "canvas",
        "els => els.map(e => e.getBoundingClientRect().width * e.getBoundingClientRect().height)",
    )
    assert len(sizes) >= 3 and min(sizes) > 0
    stats = dict(
        page.eval_on_selector_all(
            "#stats tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
        )
    )
    assert stats["Trades"] == f"{result.stats['n_trades']:,}"
    assert stats["Return [%]"] == f"{result.stats['total_return_pct']:,.2f}"
    assert stats["Max. drawdown [%]"] == f"{result.stats['max_drawdown_pct']:,.2f}"
    rows = page.eval_on_selector_all("#trades tbody tr", "rows => rows.length")
    assert rows == len(result.trades)
    first = page.eval_on_selector("#trades tbody tr", "r => r.cells[4].textContent")
    assert first == f"{result.trades['entry_price'].iloc[-1]:,.5f}"
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 20_000


def test_markup_from_the_user_stays_text(page_probe, tmp_path):
    bars = generate_bars("EURUSD", "H1", 400, seed=2)
    path = tmp_path / "xss.html"
    report_for(Xss(), bars, path, spec_name="<b>EURUSD</b>")
    probe = open_report(page_probe, path)
    assert probe.page.evaluate("window.__xss") is None
    assert probe.dialogs == [] and probe.errors == []
    title = probe.page.text_content("#title")
    assert "<script>window.__xss=1</script>" in title and "<b>EURUSD</b>" in title


def test_embedded_json_cannot_close_the_script():
    text = embed_json({"a": "</script><script>alert(1)</script>", "b": "\u2028&"})
    assert "</" not in text and "<" not in text and "&" not in text and "\u2028" not in text


@pytest.mark.slow
def test_a_large_backtest_is_thinned_and_stays_small(page_probe, tmp_path):
    bars = generate_bars("EURUSD", "M15", 200_000, seed=6)
    path = tmp_path / "large.html"
    report_for(
        get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")(), bars, path
    )
    assert path.stat().st_size < 6_000_000
    probe = open_report(page_probe, path)
    note = probe.page.text_content("#price-note")
    assert "200,000 bars shown as" in note and "candles" in note
    candles = probe.page.evaluate(
        "JSON.parse(document.getElementById('report-data').textContent).candles.length"
    )
    assert candles <= MAX_CANDLES
    assert "thinned" in probe.page.text_content("#equity-note")
    assert probe.errors == []


def test_walkforward_report_renders_offline(page_probe, tmp_path):
    from backtest.walkforward import SUMMARY_STATS, run_walkforward

    bars = generate_bars("EURUSD", "H1", 3000, seed=9)
    SmaCross = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")
    result = run_walkforward(
        bars,
        SmaCross,
        {"fast": [5, 10], "slow": [30, 60]},
        spec=get_symbol_spec("EURUSD"),
        config=BacktestConfig(),
        metric="sharpe",
        train=1000,
        test=500,
        workers=1,
        progress=False,
    )
    path = tmp_path / "walkforward.html"
    write_walkforward_report(
        result, path, title="Walk-forward: SmaCross on EURUSD", subtitle="3,000 bars"
    )
    probe = open_report(page_probe, path)
    page = probe.page
    assert probe.errors == [] and probe.blocked == [] and probe.dialogs == []
    assert page.text_content("#title") == "Walk-forward: SmaCross on EURUSD"
    assert_drawn(page, "#equity", "#drawdown")
    stats = page.eval_on_selector_all(
        "#stats tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert len(stats) == len(SUMMARY_STATS)
    trades = dict((row[0], row[2]) for row in stats)["Trades"]
    assert trades == f"{result.oos_stats['n_trades']:,}"
    assert page.eval_on_selector_all("#windows tbody tr", "rows => rows.length") == 4
    points = page.evaluate("window.__report.series.equity.data().map(p => [p.time, p.value])")
    assert len(points) == len(result.oos_equity)
    assert points[0][1] == 10_000 and points[-1][1] == round(result.oos_equity.iloc[-1], 2)
    markers = page.evaluate(
        "JSON.parse(document.getElementById('report-data').textContent).markers.map(m => m.text)"
    )
    assert markers == ["W1", "W2", "W3", "W4"]


def test_the_stop_path_is_drawn_and_partial_exits_are_marked(page_probe, tmp_path):
    bars = generate_bars("EURUSD", "H1", 3000, seed=11)
    strategy = get_strategy_from_file(ROOT / "backtest" / "strategies" / "breakeven_partial.py")
    path = tmp_path / "managed.html"
    result = report_for(strategy(), bars, path)
    assert (result.trades["exit_reason"] == "partial").any()
    probe = open_report(page_probe, path)
    assert probe.errors == [] and probe.blocked == []
    page = probe.page
    stop_points = page.evaluate(
        "() => window.__report.series.stops.sl.data().filter(p => p.value !== undefined)"
    )
    in_force = result.stops["sl"].dropna()
    assert len(stop_points) > 100
    # the line follows the stop as it moves: break-even lifts it within positions
    assert len({round(p["value"], 5) for p in stop_points}) > len(result.trades) / 2
    assert {round(p["value"], 5) for p in stop_points} <= set(in_force.round(5))
    markers = page.evaluate(
        "() => JSON.parse(document.getElementById('report-data').textContent).markers"
    )
    squares = [m for m in markers if m["shape"] == "square"]
    assert len(squares) == (result.trades["exit_reason"] == "partial").sum()
    assert all(m["text"].startswith("partial ") for m in squares)
    arrows = [m for m in markers if m["shape"].startswith("arrow")]
    assert len(arrows) == result.trades["position"].nunique()  # one entry per position


def test_portfolio_report_draws_each_symbols_contribution(page_probe, tmp_path):
    """A portfolio's report: the account's equity, a line per symbol (its P/L in the account
    currency, summing to the equity's), the breakdown and the correlation, offline."""
    from backtest.cli import main
    from backtest.data import save_csv

    for seed, symbol in enumerate(["EURUSD", "GBPUSD", "USDJPY"]):
        save_csv(generate_bars(symbol, "H1", 1_500, seed=seed), tmp_path / f"{symbol}_H1.csv")
    path = tmp_path / "portfolio.html"
    strategy = str(ROOT / "backtest" / "strategies" / "sma_cross.py")
    assert main(["run", "--strategy", strategy, "--symbols", "EURUSD,GBPUSD,USDJPY",
                 "--data-dir", str(tmp_path), "--report", str(path)]) == 0  # fmt: skip
    probe = open_report(page_probe, path)
    page = probe.page
    assert probe.errors == [] and probe.blocked == [] and probe.dialogs == []
    assert_drawn(page, "#equity", "#contributions", "#drawdown")
    last = page.evaluate(
        "[window.__report.series.equity.data().slice(-1)[0].value].concat("
        "window.__report.series.parts.map(s => s.data().slice(-1)[0].value))"
    )
    assert len(last) == 4 and abs(last[0] - 10_000 - sum(last[1:])) < 0.05
    assert page.text_content("#legend").split() == ["■", "EURUSD", "■", "GBPUSD", "■", "USDJPY"]
    rows = page.eval_on_selector_all(
        "#breakdown tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
    )
    assert rows == ["EURUSD", "GBPUSD", "USDJPY"]
    assert page.eval_on_selector_all("#correlation tbody tr", "rows => rows.length") == 3


def test_the_report_shows_overlays_volume_buy_and_hold_and_each_trades_pnl(page_probe, tmp_path):
    """SmaCross's two averages over the price, tick volume, the buy-and-hold line beside the
    equity, a bar per closed trade, the new statistics and headers in words; on a phone, a
    hint to swipe the trades table; markers thinned while many are in view."""
    from backtest.indicators import sma
    from backtest.report import strategy_overlays

    bars = generate_bars("EURUSD", "H1", 3000, seed=4)
    strategy = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")(
        fast=5, slow=20
    )
    result = run_backtest(bars, strategy, spec=get_symbol_spec("EURUSD"), config=BacktestConfig())
    path = tmp_path / "report.html"
    write_report(result, bars, path, overlays=strategy_overlays(strategy, bars))
    probe = open_report(page_probe, path)
    page = probe.page
    assert probe.errors == [] and probe.blocked == []
    assert_drawn(page, "#price", "#equity", "#trade-pnl", "#drawdown")
    overlays = page.evaluate("window.__report.series.overlays.map(s => s.data().slice(-1)[0])")
    assert [round(p["value"], 6) for p in overlays] == [
        round(float(np.asarray(sma(bars["close"], n))[-1]), 6) for n in (5, 20)
    ]
    legend = page.eval_on_selector_all("#overlay-legend span", "s => s.map(e => e.textContent)")
    assert legend == ["— SMA 5", "— SMA 20"]
    assert page.evaluate("window.__report.series.volume.data().length") == len(bars)
    hold = page.evaluate("window.__report.series.buyHold.data().slice(-1)[0].value")
    close = bars["close"].to_numpy()
    assert hold == pytest.approx(10_000 * close[-1] / close[0], abs=0.01)
    bars_sum = page.evaluate(
        "window.__report.series.tradePnl.data().reduce((a, p) => a + p.value, 0)"
    )
    assert bars_sum == pytest.approx(result.trades["pnl"].sum(), abs=0.05)
    heads = page.eval_on_selector_all("#trades thead th", "cells => cells.map(c => c.textContent)")
    assert heads[0] == "entry (UTC)" and "P/L" in heads and "closed by" in heads
    stats = page.eval_on_selector_all("#stats tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert {"SQN", "Kelly criterion [%]", "Calmar ratio", "Avg. drawdown [%]"} <= set(stats)
    assert int(page.evaluate("document.querySelector('#price').dataset.markerEvery")) > 1
    assert page.eval_on_selector(".swipe", "e => getComputedStyle(e).display") == "none"
    phone = page_probe(width=390, height=844)
    phone.page.goto(path.as_uri())
    phone.page.wait_for_function("window.__reportReady === true", timeout=15_000)
    assert phone.page.eval_on_selector(".swipe", "e => getComputedStyle(e).display") == "block"
    assert phone.errors == []
