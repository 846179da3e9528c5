"""The trader's health (live/health.py) from a real audit database written by a real trader on
the simulator, with its wall clock driven by the test: the report, the command line that
Docker's HEALTHCHECK runs, and the dashboard's /healthz served by waitress."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from live.audit_logger import AuditLogger
from live.audit_reader import AuditReader
from live.dashboard import create_app
from live.health import health_report, main
from tests.live.conftest import ROOT, serve_app

START = 1_800_000_000.0  # the wall clock when the heartbeat is written
TOKEN = "health-token-0123456789abcdef"


class Wall:
    """A wall clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def heartbeat_db(make_trader, live_config, make_sim, wall: Wall, **config) -> Path:
    """A running trader's database: started and one loop done (a heartbeat at `wall`), not
    shut down; returns its path."""
    trader = make_trader(live_config(**config), make_sim(), wall_clock=wall)
    trader.start()
    trader.iterate()
    return trader.config.audit_db


def test_a_fresh_heartbeat_is_healthy_and_an_old_one_is_not(make_trader, live_config, make_sim):
    db = heartbeat_db(make_trader, live_config, make_sim, Wall(START))
    reader = AuditReader(db)
    fresh = health_report(reader, START + 30)
    assert fresh["healthy"] and fresh["state"] == "running" and fresh["connected"] is True
    assert fresh["heartbeat_age_s"] == 30.0 and fresh["mode"] == "dry-run"
    assert fresh["backend"] == "injected" and fresh["reason"] == "ok"
    stale = health_report(reader, START + 181)
    assert not stale["healthy"] and stale["state"] == "stale" and not stale["alive"]
    assert "181.0 s old" in stale["reason"] and "180 s" in stale["reason"]
    assert health_report(reader, START + 181, max_age=300)["healthy"]  # a longer allowance


def test_a_lost_terminal_and_a_shutdown_are_unhealthy(make_trader, live_config, make_sim):
    wall = Wall(START)
    trader = make_trader(live_config(), make_sim(), wall_clock=wall)
    trader.start()
    trader.iterate()
    wall.now += 5
    trader.status.changed()
    trader.status.heartbeat(False)  # what a loop records when the terminal is unreachable
    reader = AuditReader(trader.config.audit_db)
    down = health_report(reader, wall.now + 1)
    assert down["alive"] and down["connected"] is False and not down["healthy"]
    assert "terminal is unreachable" in down["reason"]
    trader.shutdown()  # a last heartbeat, then the shutdown event
    stopped = health_report(reader, wall.now + 1)
    assert stopped["state"] == "stopped" and not stopped["healthy"] and not stopped["alive"]


def test_no_database_and_no_heartbeat_are_unhealthy(tmp_path):
    assert health_report(None, START)["state"] == "no data"
    AuditLogger(tmp_path / "audit.db").close()  # created, the trader not started yet
    report = health_report(AuditReader(tmp_path / "audit.db"), START)
    assert report["state"] == "no data" and report["connected"] is None
    assert "no heartbeat" in report["reason"]


def test_the_command_line_exit_codes(make_trader, live_config, make_sim, tmp_path, capsys):
    db = heartbeat_db(make_trader, live_config, make_sim, Wall(START))
    assert main(["--db", str(db)], now=lambda: START + 60) == 0
    assert json.loads(capsys.readouterr().out)["healthy"] is True
    assert main(["--db", str(db), "--max-age", "30"], now=lambda: START + 60) == 1
    assert json.loads(capsys.readouterr().out)["state"] == "stale"
    assert main(["--db", str(tmp_path / "nowhere.db")], now=lambda: START) == 1
    with pytest.raises(SystemExit) as usage:
        main(["--db", str(db), "--max-age", "0"])
    assert usage.value.code == 2 and "--max-age" in capsys.readouterr().err
    bad_env = tmp_path / "bad.env"
    bad_env.write_text("AUDIT_DBX=x\n")
    assert main(["--config", str(bad_env)]) == 2
    assert "AUDIT_DBX" in capsys.readouterr().err


def dockerfile_healthcheck() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])\s*$", text, re.MULTILINE | re.DOTALL)
    assert found, "the Dockerfile has a HEALTHCHECK with an exec-form CMD"
    return json.loads(found.group(1))


def test_the_dockerfile_healthcheck_runs_as_written(make_trader, live_config, make_sim, tmp_path):
    """The image's HEALTHCHECK command, run here in the project folder as the image's
    WORKDIR holds it, against a database with a heartbeat written now (real wall time)."""
    command = dockerfile_healthcheck()
    assert command[:3] == ["python", "-m", "live.health"]
    db = heartbeat_db(make_trader, live_config, make_sim, Wall(time.time()))

    def healthcheck(audit_db: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *command[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "AUDIT_DB": str(audit_db)},  # as `docker run -e AUDIT_DB=...`
        )

    healthy = healthcheck(db)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert json.loads(healthy.stdout)["state"] == "running"
    absent = healthcheck(tmp_path / "absent.db")
    assert absent.returncode == 1 and json.loads(absent.stdout)["state"] == "no data"


def get(url: str, token: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_answers_200_when_healthy_503_when_not_and_needs_the_token(
    make_trader, live_config, make_sim
):
    wall = Wall(START)
    db = heartbeat_db(make_trader, live_config, make_sim, wall, mt5_password="pw-not-shown-123")
    app = create_app(db, token=TOKEN, wall_clock=wall)
    with serve_app(app) as base:
        assert get(f"{base}/healthz")[0] == 401  # like every route: the token or nothing
        wall.now = START + 20
        status, body = get(f"{base}/healthz", TOKEN)
        assert status == 200 and body["healthy"] is True
        (report,) = body["traders"]
        assert report["name"] == "audit" and report["heartbeat_age_s"] == 20.0
        assert report["connected"] is True and report["state"] == "running"
        text = json.dumps(body)
        assert "10000001" not in text and "Sim-Demo" not in text  # no account
        assert "pw-not-shown-123" not in text and TOKEN not in text and str(db) not in text
        wall.now = START + 500
        status, body = get(f"{base}/healthz", TOKEN)
        assert status == 503 and body["traders"][0]["state"] == "stale"
        status, body = get(f"{base}/healthz?max_age=600", TOKEN)
        assert status == 200 and body["traders"][0]["max_age_s"] == 600
        assert get(f"{base}/healthz?max_age=soon", TOKEN)[0] == 400
        assert get(f"{base}/healthz?maxage=60", TOKEN)[0] == 400
        assert get(f"{base}/healthz?trader=audit", TOKEN)[0] == 503
        assert get(f"{base}/healthz?trader=other", TOKEN)[0] == 404
