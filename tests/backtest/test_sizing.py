"""Position sizing and volume/price rounding shared by backtest and live."""

from __future__ import annotations

import pytest

from backtest.sizing import Sizing, SizingError, position_size
from backtest.symbols import SymbolSpec, get_symbol_spec

EURUSD = get_symbol_spec("EURUSD")


@pytest.mark.parametrize(
    ("lots", "expected"),
    [
        (0.1, 0.1),
        (0.30000000000000004, 0.3),
        (0.299999999999, 0.3),
        (0.057, 0.05),
        (0.001, 0.01),
        (250.0, 100.0),
    ],
)
def test_fixed_lots_are_snapped_to_the_step_and_clamped(lots, expected):
    assert position_size(sizing=Sizing.fixed(lots), spec=EURUSD, equity=1e4) == expected


@pytest.mark.parametrize(
    ("equity", "risk", "sl", "expected"),
    [
        (10_000, 1.0, 0.0020, 0.5),  # 100 USD / (0.0020 × 100,000 USD per lot)
        (10_000, 1.0, 0.0030, 0.33),  # 0.3333 floored: never risk more than asked
        (10_000, 2.0, 0.0001, 20.0),
        (100, 1.0, 0.0100, 0.01),  # below the minimum: clamped up to volume_min
        (1e9, 5.0, 0.0010, 100.0),  # above the maximum: clamped down to volume_max
    ],
)
def test_risk_sizing(equity, risk, sl, expected):
    lots = position_size(sizing=Sizing.risk(risk), spec=EURUSD, equity=equity, sl_distance=sl)
    assert lots == pytest.approx(expected)


def test_risk_sizing_converts_jpy_risk_into_the_account_currency():
    usdjpy = get_symbol_spec("USDJPY")
    # 1 lot loses 0.50 JPY × 100,000 = 50,000 JPY = 333.33 USD at 150.00; risk 100 USD -> 0.3 lots
    lots = position_size(
        sizing=Sizing.risk(1.0), spec=usdjpy, equity=10_000, sl_distance=0.5, price=150.0
    )
    assert lots == pytest.approx(0.3)


@pytest.mark.parametrize("sl", [None, 0.0, -0.001, float("nan")])
def test_risk_sizing_needs_a_positive_stop(sl):
    with pytest.raises(SizingError, match="stop-loss"):
        position_size(sizing=Sizing.risk(1.0), spec=EURUSD, equity=1e4, sl_distance=sl)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "kelly"},
        {"lots": 0},
        {"lots": -1},
        {"mode": "risk", "risk_percent": 0},
        {"mode": "risk", "risk_percent": 150},
    ],
)
def test_bad_sizing_is_rejected(kwargs):
    with pytest.raises(ValueError):
        Sizing(**kwargs)


def test_volume_validity_follows_min_plus_k_steps():
    spec = SymbolSpec("X", volume_min=0.1, volume_step=0.05, volume_max=5.0)
    assert spec.is_valid_volume(0.15) and spec.is_valid_volume(5.0)
    assert not spec.is_valid_volume(0.12) and not spec.is_valid_volume(0.05)
    assert not spec.is_valid_volume(5.05)


def test_prices_round_to_digits_and_known_specs_exist():
    assert EURUSD.round_price(1.1234567) == 1.12346
    assert get_symbol_spec("USDJPY").round_price(151.23456) == 151.235
    gold = get_symbol_spec("XAUUSD")
    assert (gold.digits, gold.contract_size) == (2, 100.0)
    assert get_symbol_spec("EURUSD.m").contract_size == 100_000.0


def test_unknown_symbol_gets_a_generic_spec_with_a_warning(caplog):
    spec = get_symbol_spec("NZDCAD")
    assert (spec.currency_base, spec.currency_profit) == ("NZD", "CAD")
    assert "no default spec" in caplog.text
