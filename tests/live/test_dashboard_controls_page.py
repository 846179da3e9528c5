"""The dashboard's controls in headless Chromium over a real trader on the simulator: each
button asks for a confirmation, leaves its request, and the trader acts on its next loop and
records who asked; a form on another origin cannot trigger one; without a token, no buttons."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from live.audit_logger import AuditLogger
from live.control_requests import close_requests
from live.dashboard import create_app
from live.dashboard_controls import ControlSettings, control_settings
from live.state_manager import kill_switch_file_level
from tests.live.conftest import serve_app
from tests.live.test_dashboard_edges import heartbeat
from tests.live.test_live_trader import open_until_position, rows

TOKEN = "Xq3vB7mN2pL9sR4tW8yZ1aC6"
RESULT = "#controls-result"
HOSTILE = "<img src=x onerror=\"document.title='injected'\">"


def last_event(db, kind: str) -> dict:
    row = rows(db, "SELECT * FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", kind)[0]
    return {**dict(row), "data": json.loads(row["data"] or "{}")}


@contextmanager
def cross_site_page(target: str) -> Iterator[str]:
    """A page on another port of 127.0.0.1 (another origin, the same site: the dashboard's
    SameSite cookies go along) whose form POSTs to `target` as soon as it loads."""
    page = (
        f'<!doctype html><form id="f" method="POST" action="{target}">'
        '<input name="level" value="close_all"></form>'
        '<script>document.getElementById("f").submit()</script>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


class Operator:
    """A person at the page: clicks, answers each confirmation as told, reads the outcome."""

    def __init__(self, page) -> None:
        self.page = page
        self.accept = True
        self.questions: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._answer)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def _answer(self, dialog) -> None:
        self.questions.append(dialog.message)
        dialog.accept() if self.accept else dialog.dismiss()

    def press(self, name: str, *, outcome: str) -> None:
        """Click the button `name` and wait for the line under the buttons to say `outcome`."""
        self.page.get_by_role("button", name=name).click()
        self.page.locator(RESULT, has_text=outcome).wait_for(timeout=10_000)


@pytest.mark.browser
def test_each_button_reaches_the_trader_in_one_loop_and_a_cross_site_form_cannot(
    live_config, make_sim, make_trader, browser
):
    config = live_config(strategy_params="fast=5,slow=12", dry_run=False, dashboard_token=TOKEN)
    terminal = make_sim()
    trader = make_trader(config, terminal)
    trader.start()
    open_until_position(trader, terminal)  # its heartbeat lists the position
    (ticket,) = trader.state.positions
    db, kill_switch = config.audit_db, config.kill_switch_file
    app = create_app(db, token=TOKEN, controls=control_settings(config))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        with serve_app(app) as base:
            you = Operator(context.new_page())
            you.page.goto(f"{base}/?token={TOKEN}")
            you.page.get_by_role("button", name=f"Close #{ticket}").wait_for()

            you.press("Halt", outcome="kill switch set to halt")
            assert "Halt: no new entries" in you.questions[-1]
            assert kill_switch_file_level(kill_switch, "close_all") == "halt"
            trader.iterate()  # one loop
            assert trader.state.kill_switch.level == "halt"
            origin = last_event(db, "kill_switch_on")["data"]["origin"]
            assert (origin["via"], origin["address"]) == ("dashboard", "127.0.0.1")
            assert "HeadlessChrome" in origin["agent"] and len(origin["agent"]) <= 120

            you.accept = False  # the person thinks again: nothing is sent
            you.press("Reduce", outcome="Cancelled: nothing was sent")
            assert kill_switch_file_level(kill_switch, "close_all") == "halt"
            you.accept = True
            you.press("Reduce", outcome="kill switch set to reduce")
            trader.iterate()
            assert last_event(db, "kill_switch_on")["data"]["level"] == "reduce"

            you.press(f"Close #{ticket}", outcome=f"asked the trader to close position #{ticket}")
            assert f"Close position #{ticket} (EURUSD" in you.questions[-1]
            trader.iterate()
            assert ticket not in {p.ticket for p in terminal.positions_get()}
            closed = last_event(db, "close_requested")
            assert closed["data"]["ticket"] == ticket and closed["data"]["status"] == "filled"
            assert closed["data"]["origin"]["via"] == "dashboard"
            # the page shows what the trader did, and who asked
            you.page.get_by_text("closed on the request of dashboard").first.wait_for()

            you.press("Close all", outcome="kill switch set to close_all")
            assert "Close all: every position" in you.questions[-1]
            trader.iterate()
            assert trader.state.kill_switch.level == "halt"  # flattened (nothing left), halted
            on = rows(db, "SELECT data FROM events WHERE kind = 'kill_switch_on' ORDER BY id")
            assert any(json.loads(r["data"]).get("level") == "close_all" for r in on)

            you.press("Resume", outcome="kill switch removed")
            assert not kill_switch.exists()
            trader.iterate()
            assert trader.state.kill_switch.level is None
            assert last_event(db, "kill_switch_off")["data"]["origin"]["via"] == "dashboard"
            assert you.errors == []

            # another origin on the same machine, with the token cookie in the browser
            with cross_site_page(f"{base}/api/controls/close_all") as evil:
                with you.page.expect_response(lambda r: "/api/controls/" in r.url) as sent:
                    you.page.goto(evil)
                assert sent.value.status == 403
                assert "cannot use the controls" in sent.value.json()["error"]
            assert not kill_switch.exists() and close_requests(kill_switch) == []

        plain = live_config(dashboard_controls="auto")  # no token: no buttons
        unprotected = create_app(db, controls=control_settings(plain))
        with serve_app(unprotected) as base:
            page = context.new_page()
            page.goto(f"{base}/")
            page.wait_for_function("() => document.documentElement.dataset.controls === 'off'")
            assert page.locator("#controls").count() == 0
            assert page.get_by_role("button", name="Halt").count() == 0
            status = page.evaluate(
                "() => fetch('/api/controls/halt', {method: 'POST'}).then(r => r.status)"
            )
            assert status == 403 and not kill_switch.exists()
    finally:
        context.close()


@pytest.mark.browser
def test_the_buttons_are_there_only_while_their_trader_is_shown(tmp_path, browser):
    """Two traders on one page: the buttons belong to AUDIT_DB's, the other is only watched;
    values from the database stay text, and a ticket that is no number gets no button (it
    goes into the request's path: "../close_all" would make "Close" a close-all)."""
    kill_switch = tmp_path / "KILL_SWITCH"
    position = {"side": "buy", "volume": 0.1, "profit": 1.0, "comment": HOSTILE}
    for name, positions in (
        ("ftmo", [{**position, "ticket": 101, "symbol": HOSTILE},
                  {**position, "ticket": "../close_all", "symbol": "EURUSD"}]),
        ("demo", [{**position, "ticket": 202, "symbol": "GBPUSD"}]),
    ):  # fmt: skip
        audit = AuditLogger(tmp_path / f"{name}.db")
        heartbeat(audit, strategy=HOSTILE, positions=positions,
                  kill_switch_file=str(tmp_path / name.upper()))  # fmt: skip
        audit.close()
    settings = ControlSettings(tmp_path / "FTMO", audit_db=tmp_path / "ftmo.db")
    kill_switch = settings.kill_switch_file
    app = create_app([tmp_path / "ftmo.db", tmp_path / "demo.db"], token=TOKEN, controls=settings)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        with serve_app(app) as base:
            you = Operator(context.new_page())
            shown = you.page.goto(f"{base}/?token={TOKEN}")
            assert "form-action 'none'" in shown.headers["content-security-policy"]
            you.page.get_by_role("button", name="Close #101").wait_for()
            assert you.page.locator("#control-positions button").count() == 1
            selector = you.page.locator("#trader")

            selector.select_option("demo")
            notice = you.page.locator("#controls-notice")
            notice.wait_for()
            assert "act on trader ftmo only" in notice.inner_text()
            assert "demo can only be watched here" in notice.inner_text()
            you.page.locator("#positions", has_text="GBPUSD").wait_for()  # demo's page
            assert you.page.locator("#controls button").count() == 0

            selector.select_option("ftmo")
            you.page.get_by_role("button", name="Halt").wait_for()
            assert notice.count() == 0
            you.press("Close #101", outcome="asked the trader to close position #101")
            assert you.questions[-1].startswith("Trader ftmo.")
            assert [r.ticket for r in close_requests(kill_switch)] == [101]

            # the database's markup is shown as text: no element made, no script run
            assert HOSTILE in you.page.locator("#positions").inner_text()
            assert HOSTILE in you.page.locator("#control-positions").inner_text()
            assert you.page.locator("main img, header img").count() == 0
            assert you.page.title() != "injected" and you.errors == []
        assert not (tmp_path / "DEMO").exists()
    finally:
        context.close()
