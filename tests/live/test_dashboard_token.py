"""The dashboard token as an attacker meets it: a wrong token never yields a cookie, a redirect
or data (raw HTTP and a real Chromium); a right one becomes an HttpOnly cookie and leaves the
address bar; short tokens are refused at start."""

from __future__ import annotations

import http.client
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from live.audit_logger import AuditLogger
from live.dashboard import TOKEN_COOKIE, create_app
from tests.live.conftest import ROOT, serve_app

TOKEN = "Xq3vB7mN2pL9sR4tW8yZ1aC6"
WRONG = ("wrong", "", TOKEN[:-1], TOKEN + "x", TOKEN.lower())
PATHS = ("/", "/api/status", "/api/orders", "/metrics", "/static/dashboard.js", "/no/such/page")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    audit = AuditLogger(tmp_path / "audit.db")
    audit.record_event("startup", "a trader started")
    audit.record_order(
        client_order_id="LTSECRETORDER0001",
        status="intent",
        symbol="EURUSD",
        side="buy",
        kind="open",
        volume=0.01,
        dry_run=True,
    )
    audit.close()
    return tmp_path / "audit.db"


@pytest.fixture
def served(db: Path) -> Iterator[str]:
    with serve_app(create_app(db, token=TOKEN)) as base:
        yield base


def raw_get(base: str, target: str, headers: dict[str, str] | None = None) -> tuple:
    """(status, headers as a list of pairs, body) of one GET, nothing followed or interpreted."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("offered", WRONG)
def test_a_wrong_token_gets_401_and_nothing_else_over_raw_http(served, path, offered):
    status, headers, body = raw_get(served, f"{path}?token={offered}")
    names = {name.lower() for name, _ in headers}
    assert status == 401
    assert "set-cookie" not in names and "location" not in names
    assert TOKEN.encode() not in body and b"LTSECRETORDER" not in body


@pytest.mark.parametrize("offered", WRONG[:3])
def test_a_wrong_cookie_or_bearer_gets_401(served, offered):
    for headers in (
        {"Cookie": f"{TOKEN_COOKIE}={offered}"},
        {"Authorization": f"Bearer {offered}"},
    ):
        status, answer, body = raw_get(served, "/api/orders", headers)
        assert status == 401 and b"LTSECRETORDER" not in body
        assert "set-cookie" not in {name.lower() for name, _ in answer}


def test_a_right_token_becomes_a_cookie_and_the_url_loses_it(served):
    status, headers, _ = raw_get(served, f"/api/orders?limit=5&token={TOKEN}&symbol=EURUSD")
    assert status == 303
    assert dict(headers)["Location"] == "/api/orders?limit=5&symbol=EURUSD"
    cookie = dict(headers)["Set-Cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    status, _, body = raw_get(
        served, "/api/orders?limit=5&symbol=EURUSD", {"Cookie": f"{TOKEN_COOKIE}={TOKEN}"}
    )
    assert status == 200 and b"LTSECRETORDER0001" in body


def test_the_cookie_is_secure_over_https_and_behind_a_trusted_proxy_only(db):
    direct = create_app(db, token=TOKEN).test_client()
    over_https = direct.get(f"/?token={TOKEN}", base_url="https://dash.example")
    assert "Secure" in over_https.headers["Set-Cookie"]
    forwarded = {"X-Forwarded-Proto": "https"}
    untrusted = direct.get(f"/?token={TOKEN}", headers=forwarded)
    assert "Secure" not in untrusted.headers["Set-Cookie"]  # anyone can send that header
    trusting = create_app(db, token=TOKEN, trust_proxy=True).test_client()
    behind_proxy = trusting.get(f"/?token={TOKEN}", headers=forwarded)
    assert "Secure" in behind_proxy.headers["Set-Cookie"]


@pytest.mark.browser
def test_in_chromium_a_wrong_token_yields_no_cookie_no_redirect_no_data(served, page_probe):
    probe = page_probe((served,))
    page, context = probe.page, probe.page.context
    for path in ("/", "/api/orders"):
        response = page.goto(f"{served}{path}?token=wrong-token-attempt")
        assert response.status == 401 and response.request.redirected_from is None
        assert page.url == f"{served}{path}?token=wrong-token-attempt"
        assert "LTSECRETORDER" not in page.content()
    assert context.cookies() == []
    response = page.goto(f"{served}/api/orders")  # nothing was remembered either
    assert response.status == 401


@pytest.mark.browser
def test_in_chromium_a_right_token_opens_the_page_and_leaves_the_address_bar(served, page_probe):
    probe = page_probe((served,))
    page = probe.page
    response = page.goto(f"{served}/?token={TOKEN}")
    assert response.status == 200 and response.request.redirected_from is not None
    assert page.url == f"{served}/"
    page.locator("#orders td", has_text="LTSECRETORDER0001").first.wait_for()
    (cookie,) = page.context.cookies()
    assert cookie["name"] == TOKEN_COOKIE and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts on the page cannot read it
    assert TOKEN not in page.evaluate("location.href")
    assert probe.errors == [] and probe.blocked == []


@pytest.mark.parametrize("token", ["short", "fifteen-chars15"])
def test_a_short_token_is_refused_at_start_with_how_to_make_one(tmp_path, token):
    env = tmp_path / "test.env"
    env.write_text(f"DASHBOARD_TOKEN={token}\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "live" / "dashboard.py"), "--config", str(env)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"DASHBOARD_TOKEN is {len(token)} characters" in done.stderr
    assert "secrets.token_urlsafe" in done.stderr and token not in done.stderr
