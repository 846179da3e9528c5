"""Running unattended: the systemd units, the Windows task, the Dockerfile, all checked as far
as Linux allows against the trader they start (its script, its argument parser, its exit
codes and signals), and `--check --json` for monitoring systems."""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from live.check_report import Finding, document
from live.config import LiveConfig
from live.doctor import run_check
from live.errors import ConfigError
from live.instance_lock import AlreadyRunning
from live.mt5_connector import MT5Connector
from live.trader_cli import EXIT_USAGE, build_parser
from tests.live.conftest import ROOT, SMA_CROSS
from tests.live.test_live_trader_cli import settings

DEPLOY = ROOT / "deploy"
UNITS = ("mt5-trader.service", "mt5-trader@.service")
INSTALLED = "/opt/mt5-trader"  # where the units expect the project


@pytest.fixture
def empty_env(tmp_path: Path) -> Path:
    """A settings file with nothing in it: a developer's .env stays out."""
    path = tmp_path / "empty.env"
    path.touch()
    return path


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text())
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_the_systemd_unit_starts_the_trader_and_restarts_it_only_when_that_can_help(name):
    service = unit(name)["Service"]
    assert service["WorkingDirectory"] == INSTALLED
    python, script, *args = shlex.split(service["ExecStart"])
    assert python == f"{INSTALLED}/.venv/bin/python"
    assert (ROOT / script).is_file() and script == "live/live_trader.py"
    build_parser().parse_args(args)  # the trader takes its arguments (exits 2 if not)
    assert service["Restart"] == "on-failure" and int(service["RestartSec"]) >= 10
    # settings errors exit 2: never restarted ...
    assert service["RestartPreventExitStatus"].split() == [str(EXIT_USAGE)]
    # ... as the lock's refusal is (tests/live/test_live_trader_cli.py runs it)
    assert issubclass(AlreadyRunning, ConfigError)
    # the trader stops cleanly on SIGTERM (test_signal_stops_gracefully_with_a_summary)
    assert service["KillSignal"] == signal.SIGTERM.name and service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) >= 30  # alerts get 5 s to flush, the loop its pass
    assert service["User"] == service["Group"] == "mt5trader"
    assert service["EnvironmentFile"].startswith(("/etc/mt5-trader/", "-/etc/mt5-trader/"))
    start_limits = unit(name)["Unit"]
    assert int(start_limits["StartLimitBurst"]) >= 3
    assert int(start_limits["StartLimitIntervalSec"]) > 0
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_the_template_gives_each_instance_its_own_database_log_and_kill_switch(empty_env):
    service = unit("mt5-trader@.service")["Service"]
    assert service["EnvironmentFile"] == "/etc/mt5-trader/%i.env"
    environment = dict(
        item.split("=", 1) for item in shlex.split(service["Environment"].replace("%i", "gold"))
    )
    config = LiveConfig.load(
        env_file=empty_env, environ=environment, overrides={"strategy_path": str(SMA_CROSS)}
    )
    assert config.audit_db == ROOT / "data" / "gold" / "audit.db"
    assert config.log_dir == ROOT / "logs" / "gold"
    assert config.kill_switch_file == ROOT / "data" / "gold" / "KILL_SWITCH"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize(
    ("name", "as_name"), [(UNITS[0], UNITS[0]), (UNITS[1], "mt5-trader@gold.service")]
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path, name, as_name):
    """`systemd-analyze verify` with the install folder pointed at this checkout: no unknown
    key, no command missing."""
    text = (DEPLOY / name).read_text().replace(INSTALLED, str(ROOT))
    installed = tmp_path / as_name
    installed.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(installed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # warnings (an unknown key) count too


NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def test_the_windows_task_runs_the_start_script_at_logon_and_forever():
    task = ET.parse(DEPLOY / "mt5-trader-task.xml").getroot()
    assert task.tag == f"{{{NS['t']}}}Task"
    exec_ = task.find("t:Actions/t:Exec", NS)
    command = exec_.findtext("t:Command", namespaces=NS)
    folder = exec_.findtext("t:WorkingDirectory", namespaces=NS)
    assert command == folder + "\\deploy\\run_unattended.bat"
    assert (ROOT / "deploy" / "run_unattended.bat").is_file()
    args = exec_.findtext("t:Arguments", namespaces=NS).split()
    parsed = build_parser().parse_args(args)
    assert (ROOT / parsed.strategy_file.replace("\\", "/")).is_file()
    assert task.find("t:Triggers/t:LogonTrigger", NS) is not None
    settings_ = task.find("t:Settings", NS)
    assert settings_.findtext("t:ExecutionTimeLimit", namespaces=NS) == "PT0S"  # not 3 days
    assert settings_.findtext("t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
    assert settings_.findtext("t:DisallowStartIfOnBatteries", namespaces=NS) == "false"
    assert settings_.findtext("t:StopIfGoingOnBatteries", namespaces=NS) == "false"
    assert settings_.find("t:RestartOnFailure/t:Interval", NS) is not None
    logon = task.findtext("t:Principals/t:Principal/t:LogonType", namespaces=NS)
    assert logon == "InteractiveToken"  # the MT5 terminal lives in the user's desktop session


def test_the_task_wrapper_restarts_the_start_script_except_after_0_or_2():
    raw = (DEPLOY / "run_unattended.bat").read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # cmd wants CRLF
    lines = [line.strip() for line in raw.decode("ascii").splitlines()]
    code = [line for line in lines if line and not line.lower().startswith("rem")]
    assert "call start_trader.bat %*" in code and (ROOT / "start_trader.bat").is_file()
    assert 'if "%CODE%"=="0" exit /b 0' in code
    assert f'if "%CODE%"=="{EXIT_USAGE}" exit /b {EXIT_USAGE}' in code
    assert code.index("call start_trader.bat %*") < code.index("goto start")
    assert 'set "TRADER_UNATTENDED=1"' in code
    start = (ROOT / "start_trader.bat").read_text().splitlines()
    hold = start.index(":hold")
    assert "if defined TRADER_UNATTENDED exit /b 0" in start[hold : hold + 4]  # no pause


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    rows = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in rows
        if line and not line.startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, p.rstrip("/")) or fnmatch.fnmatch(path, p.rstrip("/") + "/*")
        for p in patterns
    )


def test_the_dockerfile_copies_what_exists_and_starts_the_trader_on_the_simulator(empty_env):
    steps = dockerfile()
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pattern in (".env", "**/*.key", "data/", ".venv/", ".git/"):
        assert pattern in patterns  # no secret, no local state in the image
    copied = [args.split()[:-1] for kind, args in steps if kind == "COPY"]
    assert copied, "the Dockerfile copies the project"
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source.rstrip("/"), patterns), source
    for needed in ("backtest", "live"):
        assert any(f"{needed}/" in sources for sources in copied)
    entrypoint = json.loads(dict(steps)["ENTRYPOINT"])
    cmd = json.loads(dict(steps)["CMD"])
    assert entrypoint[:2] == ["python", "live/live_trader.py"]
    assert (ROOT / entrypoint[1]).is_file()
    parsed = build_parser().parse_args(entrypoint[2:] + cmd)
    assert (ROOT / parsed.strategy_file).is_file()
    assert dict(steps)["STOPSIGNAL"] == "SIGTERM" and "USER" in dict(steps)
    env = dict(
        item.split("=", 1) for kind, args in steps if kind == "ENV" for item in shlex.split(args)
    )
    config = LiveConfig.load(env_file=empty_env, environ=env)  # the image's settings are valid
    assert config.backend == "sim" and config.dry_run


def test_check_json_prints_one_document_with_the_exit_codes_unchanged(tmp_path):
    secret_env = settings(
        tmp_path,
        MT5_PASSWORD="pw-never-shown-4711",
        DASHBOARD_TOKEN="token-never-shown-0815-abcdef",
    )
    base = [sys.executable, str(ROOT / "live" / "live_trader.py"), "--config", str(secret_env)]
    ready = subprocess.run(
        [*base, str(SMA_CROSS), "--check", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ready.returncode == 0, ready.stderr
    report = json.loads(ready.stdout)  # nothing else on stdout
    assert report["ok"] is True and report["exit_code"] == 0
    assert report["result"].startswith("ready")
    names = [check["name"] for check in report["checks"]]
    assert {"strategy", "storage", "connection", "terminal", "symbol EURUSD"} <= set(names)
    assert all(set(check) >= {"name", "ok", "detail"} for check in report["checks"])
    for output in (ready.stdout, ready.stderr):
        assert "pw-never-shown-4711" not in output and "never-shown-0815" not in output
    bad = subprocess.run(
        [*base, "--check", "--json", "--timeframe", "H7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    refused = json.loads(bad.stdout)
    assert refused["ok"] is False and refused["exit_code"] == 2
    (problem,) = refused["checks"]
    assert problem["key"] == "TIMEFRAME" and "H7" in problem["detail"] and not problem["ok"]


def test_check_json_names_the_failing_check(live_config, make_sim):
    terminal = make_sim(trade_allowed=False)
    terminal.shutdown()  # the check connects by itself
    lines: list[str] = []
    config = live_config(dry_run=True)
    code = run_check(config, MT5Connector(config, api=terminal), out=lines.append, as_json=True)
    assert code == 1 and len(lines) == 1
    report = json.loads(lines[0])
    assert report["ok"] is False and report["exit_code"] == 1
    failed = [check for check in report["checks"] if not check["ok"]]
    assert [check["name"] for check in failed] == ["terminal", "symbol EURUSD"]
    assert "Algo Trading is off" in failed[0]["detail"] and failed[0]["fix"]
    assert "10027" in failed[1]["detail"]  # order_check refused for the same reason


def test_a_secret_in_a_finding_is_blanked():
    text = document(
        [Finding("connection", "fail", 'login with "s3cr3t-pass" refused')],
        1,
        "1 problem(s)",
        secrets=["s3cr3t-pass"],
    )
    assert "s3cr3t-pass" not in text and "***" in json.loads(text)["checks"][0]["detail"]


def test_json_without_check_is_a_usage_error(capsys):
    from live.trader_cli import main

    with pytest.raises(SystemExit) as exit_code:
        main(["--json"])
    assert exit_code.value.code == 2 and "--json goes with --check" in capsys.readouterr().err
