"""After a real run with every secret set, no secret appears in the logs, the console, the
audit database or any dashboard response."""

from __future__ import annotations

import subprocess
import sys

from live.dashboard import create_app
from tests.live.conftest import ROOT, SMA_CROSS

SECRETS = {
    "MT5_PASSWORD": "pw-Zx81-never-shown",
    "TELEGRAM_BOT_TOKEN": "123456:tg-never-shown",
    "WEBHOOK_SECRET": "hmac-never-shown",
    "DASHBOARD_TOKEN": "dash-never-shown",
}


def test_no_secret_leaks_anywhere_after_a_run(tmp_path):
    env = tmp_path / "test.env"
    env.write_text(
        "".join(f"{k}={v}\n" for k, v in SECRETS.items())
        + f"AUDIT_DB={tmp_path / 'audit.db'}\nLOG_DIR={tmp_path / 'logs'}\n"
        f"KILL_SWITCH_FILE={tmp_path / 'KILL'}\nLOCK_DIR={tmp_path / 'locks'}\nMT5_BACKEND=sim\n"
        "MT5_LOGIN=10000001\nMT5_SERVER=Sim-Demo\nLOG_LEVEL=DEBUG\n"
        "TELEGRAM_CHAT_ID=42\nTELEGRAM_API_URL=http://127.0.0.1:9\n"
        "WEBHOOK_URL=http://127.0.0.1:9/hook\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "live" / "live_trader.py"),
            "--config",
            str(env),
            "--strategy",
            str(SMA_CROSS),
            "--param",
            "fast=5",
            "--param",
            "slow=12",
            "--max-bars",
            "120",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*"))
    assert "session summary" in logs
    database = (tmp_path / "audit.db").read_bytes()
    client = create_app(tmp_path / "audit.db").test_client()
    responses = "".join(
        client.get(path).get_data(as_text=True)
        for path in (
            "/api/status",
            "/api/positions",
            "/api/orders?limit=500",
            "/api/signals?limit=500",
            "/api/events?limit=500",
            "/api/trades?limit=500",
            "/api/summary",
            "/api/equity",
            "/metrics",
        )
    )
    for key, secret in SECRETS.items():
        for where, text in (
            ("console", done.stdout + done.stderr),
            ("log files", logs),
            ("dashboard", responses),
        ):
            assert secret not in text, f"{key} leaked into the {where}"
        assert secret.encode() not in database, f"{key} leaked into the audit database"
