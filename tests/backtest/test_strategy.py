"""The strategy contract: faults in a strategy's own code outside signals() are reported as
StrategyError naming the class and its file; validate()'s ValueError is InvalidParameters;
a class rebuilt from its file's text behaves as the one loaded from the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.engine import BacktestConfig, run_backtest
from backtest.strategy import (
    InvalidParameters,
    StrategyError,
    create_strategy,
    get_strategy_from_file,
    load_strategy_code,
    strategy_label,
    strategy_warmup,
)
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from tests.backtest.conftest import PERIODS_STRATEGY

ROOT = Path(__file__).resolve().parents[2]
HEAD = "import sys\nimport pandas as pd\nfrom backtest.strategy import Strategy\n\n"
SIGNALS = (
    "    def signals(self, bars):\n"
    "        return (bars['close'] > bars['close'].shift()).astype(int)\n"
)

# name -> class body (signals() is appended); each fault lies outside signals()
FAULTY = {
    "init raises": (
        "    def __init__(self, **params):\n"
        "        super().__init__(**params)\n"
        "        raise KeyError('no such setting')\n"
    ),
    "validate raises TypeError": (
        "    def validate(self):\n        raise TypeError('unsupported operand')\n"
    ),
    "validate calls sys.exit": "    def validate(self):\n        sys.exit(3)\n",
    "warmup raises": (
        "    @property\n    def warmup(self):\n        raise RuntimeError('warmup broke')\n"
    ),
    "warmup is a float": "    @property\n    def warmup(self):\n        return 2.5\n",
    "warmup is negative": "    @property\n    def warmup(self):\n        return -1\n",
    "warmup is a bool": "    warmup = True\n",
    "label raises": "    def label(self):\n        raise IndexError('label broke')\n",
    "label is not a str": "    def label(self):\n        return 42\n",
}


def strategy_file(folder: Path, body: str, name: str = "faulty.py") -> Path:
    path = folder / name
    path.write_text(HEAD + "class Faulty(Strategy):\n" + body + SIGNALS)
    return path


def use(cls: type) -> None:
    """What every command does with a strategy: create it, read its warm-up and label."""
    strategy = create_strategy(cls, {})
    strategy_warmup(strategy)
    strategy_label(strategy)


@pytest.mark.parametrize("case", list(FAULTY))
def test_faults_outside_signals_name_the_class_and_file(case, tmp_path):
    path = strategy_file(tmp_path, FAULTY[case])
    cls = get_strategy_from_file(path)
    with pytest.raises(StrategyError) as info:
        use(cls)
    assert not isinstance(info.value, InvalidParameters)
    assert str(info.value).startswith(f"Faulty ({path}): ")


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("init raises", "creating Faulty() raised KeyError: 'no such setting'"),
        ("validate raises TypeError", "validate() raised TypeError: unsupported operand"),
        ("validate calls sys.exit", "validate() raised SystemExit: 3"),
        ("warmup raises", "warmup raised RuntimeError: warmup broke"),
        ("warmup is a float", "warmup must be an integer >= 0, got 2.5"),
        ("warmup is negative", "warmup must be an integer >= 0, got -1"),
        ("warmup is a bool", "warmup must be an integer >= 0, got True"),
        ("label raises", "label() raised IndexError: label broke"),
        ("label is not a str", "label() must return a str, got int"),
    ],
)
def test_fault_messages_say_what_the_strategy_was_doing(case, fragment, tmp_path):
    cls = get_strategy_from_file(strategy_file(tmp_path, FAULTY[case]))
    with pytest.raises(StrategyError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        use(cls)


def test_a_label_fault_stops_the_backtest(tmp_path):
    cls = get_strategy_from_file(strategy_file(tmp_path, FAULTY["label raises"]))
    bars = generate_bars("EURUSD", "H1", 200, seed=1)
    with pytest.raises(StrategyError, match=r"Faulty \(.*faulty.py\): label\(\) raised"):
        run_backtest(bars, cls(), spec=get_symbol_spec("EURUSD"))


def test_sys_exit_at_import_is_a_strategy_error(tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(4)\n")
    with pytest.raises(StrategyError, match=rf"importing {path} failed: SystemExit: 4"):
        get_strategy_from_file(path)


def test_an_unresolvable_annotation_names_the_class_and_file(tmp_path):
    path = tmp_path / "annotated.py"
    path.write_text(HEAD + "class Annotated(Strategy):\n    fast: 'Undefined' = 3\n" + SIGNALS)
    with pytest.raises(
        StrategyError,
        match=rf"Annotated \({path}\): reading its parameter "
        r"annotations raised NameError: .*Undefined",
    ):
        get_strategy_from_file(path)


def test_validate_value_error_is_invalid_parameters(tmp_path):
    path = tmp_path / "periods.py"
    path.write_text(PERIODS_STRATEGY)
    cls = get_strategy_from_file(path)
    assert create_strategy(cls, {"fast": 3}).params == {"fast": 3, "slow": 20}
    with pytest.raises(
        InvalidParameters, match=rf"^Periods \({path}\): fast \(30\) must be below slow \(20\)$"
    ):
        create_strategy(cls, {"fast": 30})


def test_a_class_rebuilt_from_its_code_gives_the_same_backtest(tmp_path):
    original = ROOT / "backtest" / "strategies" / "rsi_reversion.py"
    copy = tmp_path / "rsi_copy.py"
    copy.write_text(original.read_text())
    loaded = get_strategy_from_file(copy)
    copy.unlink()  # a worker has the text only, not the file
    rebuilt = load_strategy_code(loaded.source_code, loaded.source_file, loaded.__name__)
    assert rebuilt is not loaded and rebuilt.parameters() == loaded.parameters()
    assert rebuilt.source_code == loaded.source_code
    bars = generate_bars("EURUSD", "H1", 2000, seed=3)
    params = {"period": 7, "tp_atr": 1.5}
    config = BacktestConfig()
    spec = get_symbol_spec("EURUSD")
    a = run_backtest(bars, create_strategy(loaded, params), spec=spec, config=config)
    b = run_backtest(bars, create_strategy(rebuilt, params), spec=spec, config=config)
    assert len(a.trades) > 10
    pd.testing.assert_frame_equal(a.trades, b.trades)
    assert a.stats == b.stats and a.strategy == b.strategy


def test_a_class_name_missing_from_the_code_is_named(tmp_path):
    path = tmp_path / "periods.py"
    path.write_text(PERIODS_STRATEGY)
    loaded = get_strategy_from_file(path)
    with pytest.raises(StrategyError, match="has no strategy class 'Other'; found: Periods"):
        load_strategy_code(loaded.source_code, str(path), "Other")


def test_an_out_of_range_position_is_shown_as_a_plain_number(tmp_path):
    path = tmp_path / "doubled.py"
    path.write_text(
        HEAD + "class Doubled(Strategy):\n    def signals(self, bars):\n"
        "        return pd.DataFrame({'position': 2.0, 'entry': False}, index=bars.index)\n"
    )
    bars = generate_bars("EURUSD", "H1", 200, seed=1)
    with pytest.raises(StrategyError) as info:
        run_backtest(bars, get_strategy_from_file(path)(), spec=get_symbol_spec("EURUSD"))
    assert str(info.value).endswith("position must be -1, 0 or 1; row 0 is 2.0")
