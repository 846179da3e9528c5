"""The backtest CLI's `--rules PRESET`: a prop-firm challenge evaluated on the run
(`backtest.challenge`), printed after the statistics and kept in the --json document."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from backtest.challenge import evaluate
from backtest.challenge_mc import PassProbability, pass_probability
from backtest.challenge_report import ChallengeReport
from backtest.errors import UsageError
from backtest.grid_job import Challenge
from backtest.prop_rules import Preset, PresetError, load_preset
from backtest.results import BacktestConfig, BacktestResult
from backtest.symbols import SymbolSpec


def preset_from_args(args: argparse.Namespace) -> Preset | None:
    """The --rules preset, read before the run; ValueError (exit 2) naming the file, the
    key and the allowed values when it cannot be used. Its [windows] and minimum trade
    duration tighten those options in `args` (the run trades under them, as the live trader
    does)."""
    if not getattr(args, "rules", None):
        return None
    try:
        preset = load_preset(args.rules)
    except PresetError as exc:
        raise UsageError(str(exc)) from None
    for name, value in preset.tightened(args).items():
        setattr(args, name, value)
    if preset.windows is not None and preset.windows.news and not getattr(args, "calendar", None):
        print(
            f"warning: preset {preset.name} blacks out news, but no --calendar is given: "
            "no blackout applies",
            file=sys.stderr,
        )
    return preset


def grid_challenge(args: argparse.Namespace) -> Challenge | None:
    """The --rules preset of a grid, with --mc (at least 100 paths) for the pass rate."""
    preset = preset_from_args(args)
    if preset is None:
        return None
    return Challenge(preset, _mc_paths(args), args.mc_seed)


def _mc_paths(args: argparse.Namespace) -> int:
    """--mc: 0 (off) or at least 100 paths (ValueError, exit 2)."""
    paths = getattr(args, "mc", 0) or 0
    if paths and paths < 100:
        raise UsageError(f"--mc needs at least 100 paths, got {paths}")
    return paths


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
    if preset is None or not _mc_paths(args):
        return None
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
