"""The backtest CLI's `--rules PRESET`: a prop-firm challenge evaluated on the run
(`backtest.challenge`), printed after the statistics and kept in the --json document."""

from __future__ import annotations

import argparse

import pandas as pd

from backtest.challenge import ChallengeReport, evaluate
from backtest.challenge_mc import PassProbability, pass_probability
from backtest.prop_rules import Preset, PresetError, load_preset
from backtest.results import BacktestConfig, BacktestResult
from backtest.symbols import SymbolSpec


def add_rules_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        metavar="PRESET",
        help="evaluate an account-protection preset on the run: a name in presets/ "
        "(static_5_10, higher_of_5_10, one_step_eod_trailing, futures_trailing) or a .toml file",
    )
    parser.add_argument(
        "--mc",
        type=int,
        default=0,
        metavar="PATHS",
        help="with --rules: the pass probability over this many bootstrap paths of the trades",
    )
    parser.add_argument("--mc-seed", type=int, default=0, help="seed of --mc (default 0)")


def preset_from_args(args: argparse.Namespace) -> Preset | None:
    """The --rules preset, read before the run; ValueError (exit 2) naming the file, the
    key and the allowed values when it cannot be used."""
    if not getattr(args, "rules", None):
        return None
    try:
        return load_preset(args.rules)
    except PresetError as exc:
        raise ValueError(str(exc)) from None


def challenge_of(
    preset: Preset | None,
    result: BacktestResult,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    config: BacktestConfig,
) -> ChallengeReport | None:
    """The preset's verdict on the run (None without a preset)."""
    if preset is None:
        return None
    return evaluate(preset, result, bars, spec, cash=config.cash, broker_zone=config.rules.zone)


def pass_probability_of(
    args: argparse.Namespace,
    preset: Preset | None,
    result: BacktestResult,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    config: BacktestConfig,
) -> PassProbability | None:
    """--mc PATHS: the bootstrap pass probability (None without it)."""
    if preset is None or not getattr(args, "mc", 0):
        return None
    if args.mc < 100:
        raise ValueError(f"--mc needs at least 100 paths, got {args.mc}")
    return pass_probability(
        preset,
        result,
        bars,
        spec,
        cash=config.cash,
        broker_zone=config.rules.zone,
        paths=args.mc,
        seed=args.mc_seed,
    )
