"""The dashboard's control routes (live/dashboard_controls.py) as an attacker and a user meet
them, without a browser: off unless a token protects the dashboard or DASHBOARD_CONTROLS=on
on loopback, and every refused POST leaves no file behind. The page in Chromium, the
cross-site form and a real trader acting on the requests: test_dashboard_controls_page.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from live.audit_logger import AuditLogger
from live.control_requests import close_requests, control_folder, kill_switch_origin
from live.dashboard import app_for, create_app, main, settings_from_args
from live.dashboard_controls import SESSION_COOKIE, ControlSettings
from live.state_manager import kill_switch_file_level
from tests.live.test_dashboard_edges import heartbeat

TOKEN = "Xq3vB7mN2pL9sR4tW8yZ1aC6"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LOCAL = "http://127.0.0.1:5000"


def untouched(kill_switch: Path) -> bool:
    return not kill_switch.exists() and not control_folder(kill_switch).exists()


def session(client, headers=None, base_url: str = LOCAL) -> str:
    """Open the page's session: the CSRF token (its cookie stays in the client)."""
    answer = client.get("/api/controls", headers=headers or {}, base_url=base_url).get_json()
    assert answer["enabled"], answer
    return answer["csrf_token"]


@pytest.fixture
def kill_switch(tmp_path: Path) -> Path:
    return tmp_path / "KILL_SWITCH"


def test_without_a_token_there_are_no_controls_and_every_post_is_refused(tmp_path, kill_switch):
    for app in (
        create_app(tmp_path / "audit.db", controls=ControlSettings(kill_switch)),  # auto
        create_app(
            tmp_path / "audit.db", token=TOKEN, controls=ControlSettings(kill_switch, "off")
        ),
        create_app(tmp_path / "audit.db", token=TOKEN),  # started without the trader's settings
    ):
        client = app.test_client()
        answer = client.get("/api/controls", headers=BEARER, base_url=LOCAL)
        assert answer.get_json()["enabled"] is False and "csrf_token" not in answer.get_json()
        assert SESSION_COOKIE not in answer.headers.get("Set-Cookie", "")
        for path in ("/api/controls/halt", "/api/controls/resume", "/api/controls/close/5"):
            refused = client.post(path, headers=BEARER, base_url=LOCAL)
            assert refused.status_code == 403
            assert "controls are off" in refused.get_json()["error"]
    assert (
        "DASHBOARD_TOKEN"
        in create_app(tmp_path / "audit.db", controls=ControlSettings(kill_switch))
        .test_client()
        .get("/api/controls")
        .get_json()["why"]
    )
    assert untouched(kill_switch)


def test_on_loopback_without_a_token_only_a_loopback_host_is_answered(tmp_path, kill_switch):
    """DASHBOARD_CONTROLS=on, no token: a DNS-rebinding page reaches 127.0.0.1 under its own
    name, so it gets neither a CSRF token nor an action."""
    client = create_app(
        tmp_path / "audit.db", controls=ControlSettings(kill_switch, mode="on")
    ).test_client()
    for base in (LOCAL, "http://localhost:5000", "http://[::1]:5000"):
        assert client.get("/api/controls", base_url=base).get_json()["enabled"]
    csrf = session(client)
    rebound = "http://attacker.example:5000"
    assert client.get("/api/controls", base_url=rebound).get_json()["enabled"] is False
    refused = client.post("/api/controls/halt", headers={"X-CSRF-Token": csrf}, base_url=rebound)
    assert refused.status_code == 403 and "loopback" in refused.get_json()["error"]
    assert untouched(kill_switch)
    done = client.post("/api/controls/halt", headers={"X-CSRF-Token": csrf}, base_url=LOCAL)
    assert done.status_code == 200 and kill_switch_file_level(kill_switch, "halt") == "halt"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "X-CSRF-Token header does not match"),  # what a plain form sends
        ({"X-CSRF-Token": "0" * 64}, "X-CSRF-Token header does not match"),
        # another port is another origin, though the same site (its cookies come along)
        ({"Origin": "http://127.0.0.1:8001"}, "a request from http://127.0.0.1:8001"),
        ({"Origin": "null"}, "a request from null"),
        ({"Sec-Fetch-Site": "same-site"}, "a same-site request"),
        ({"Sec-Fetch-Site": "cross-site"}, "a cross-site request"),
    ],
)
def test_a_post_needs_the_sessions_csrf_token_from_the_dashboards_own_origin(
    tmp_path, kill_switch, headers, why
):
    client = create_app(
        tmp_path / "audit.db", token=TOKEN, controls=ControlSettings(kill_switch)
    ).test_client()
    csrf = session(client, BEARER)
    sent = {**BEARER, "X-CSRF-Token": csrf, **headers}
    if not headers:
        sent.pop("X-CSRF-Token")
    for path in ("/api/controls/close_all", "/api/controls/close/77"):
        refused = client.post(path, headers=sent, base_url=LOCAL)
        assert refused.status_code == 403 and why in refused.get_json()["error"]
    assert untouched(kill_switch)


def test_a_csrf_token_belongs_to_its_session(tmp_path, kill_switch):
    app = create_app(tmp_path / "audit.db", token=TOKEN, controls=ControlSettings(kill_switch))
    mine, theirs = app.test_client(), app.test_client()
    csrf = session(theirs, BEARER)
    session(mine, BEARER)
    refused = mine.post("/api/controls/halt", headers={**BEARER, "X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert "does not match this session" in refused.get_json()["error"]
    assert untouched(kill_switch)


def test_each_action_says_what_it_did_and_leaves_the_request(tmp_path, kill_switch):
    client = create_app(
        tmp_path / "audit.db", token=TOKEN, controls=ControlSettings(kill_switch)
    ).test_client()
    headers = {
        **BEARER,
        "X-CSRF-Token": session(client, BEARER),
        "Origin": LOCAL,
        "Sec-Fetch-Site": "same-origin",
        "User-Agent": "Chrome-ish/1 " + "x" * 300,
    }

    def post(path: str):
        return client.post(path, headers=headers, base_url=LOCAL)

    assert post("/api/controls/resume").status_code == 409  # nothing on yet
    for level in ("halt", "reduce", "close_all"):
        answer = post(f"/api/controls/{level}")
        assert answer.status_code == 200 and answer.get_json()["kill_switch"] == level
        assert kill_switch_file_level(kill_switch, "halt") == level
    assert "already" in post("/api/controls/close_all").get_json()["message"]
    origin = kill_switch_origin(kill_switch)
    assert (origin.via, origin.address) == ("dashboard", "127.0.0.1")
    assert origin.agent.startswith("Chrome-ish/1") and len(origin.agent) == 120
    assert post("/api/controls/resume").status_code == 200 and not kill_switch.exists()

    assert post("/api/controls/close/12345").status_code == 202
    assert "asked already" in post("/api/controls/close/12345").get_json()["message"]
    assert [r.ticket for r in close_requests(kill_switch)] == [12345]
    state = client.get("/api/controls", headers=BEARER, base_url=LOCAL).get_json()
    assert state["closes_waiting"] == [12345] and state["kill_switch"] is None
    assert post("/api/controls/close/0").status_code == 400
    assert post("/api/controls/panic").status_code == 404
    wrong_method = client.get("/api/controls/halt", headers=BEARER, base_url=LOCAL)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"


def test_controls_on_beyond_loopback_without_a_token_are_refused_at_start(tmp_path, capsys):
    env = tmp_path / "test.env"
    env.write_text(f"DASHBOARD_CONTROLS=on\nDASHBOARD_HOST=0.0.0.0\nAUDIT_DB={tmp_path}/a.db\n")
    assert main(["--config", str(env)]) == 2
    error = capsys.readouterr().err
    assert "DASHBOARD_CONTROLS=on without DASHBOARD_TOKEN" in error and "0.0.0.0" in error
    env.write_text("DASHBOARD_CONTROLS=maybe\n")
    assert main(["--config", str(env)]) == 2
    assert "DASHBOARD_CONTROLS" in capsys.readouterr().err


def test_a_request_that_cannot_be_written_is_a_500_naming_the_file(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    kill_switch = tmp_path / "not-a-folder" / "KILL_SWITCH"
    client = create_app(
        tmp_path / "audit.db", token=TOKEN, controls=ControlSettings(kill_switch)
    ).test_client()
    headers = {**BEARER, "X-CSRF-Token": session(client, BEARER)}
    for path in ("/api/controls/halt", "/api/controls/close/5"):
        failed = client.post(path, headers=headers, base_url=LOCAL)
        assert failed.status_code == 500, failed.get_json()
        error = failed.get_json()["error"]
        assert "cannot write" in error and "not-a-folder" in error and "write access" in error


# ---------------------------------------------------------------- several traders


def trader_db(path: Path, kill_switch: Path | None = None) -> Path:
    """A trader's database with one heartbeat, naming the kill-switch file it reads if given."""
    audit = AuditLogger(path)
    heartbeat(audit, **({"kill_switch_file": str(kill_switch)} if kill_switch else {}))
    audit.close()
    return path


def test_with_several_traders_the_controls_act_on_audit_dbs_trader_only(tmp_path, kill_switch):
    demo_switch = tmp_path / "DEMO_SWITCH"
    mine = trader_db(tmp_path / "ftmo.db", kill_switch)
    other = trader_db(tmp_path / "demo.db", demo_switch)
    # demo first, so it is the default one; AUDIT_DB named by a path that resolves to ftmo's
    settings = ControlSettings(kill_switch, audit_db=tmp_path / "sub" / ".." / "ftmo.db")
    client = create_app([other, mine], token=TOKEN, controls=settings).test_client()

    shown_demo = client.get("/api/controls", headers=BEARER, base_url=LOCAL).get_json()
    assert (shown_demo["enabled"], shown_demo["acts_on"], shown_demo["trader"]) == (
        True, "ftmo", "demo")  # fmt: skip
    assert "act on trader ftmo only" in shown_demo["notice"]
    assert "demo can only be watched here" in shown_demo["notice"]
    shown_ftmo = client.get("/api/controls?trader=ftmo", headers=BEARER, base_url=LOCAL)
    assert (shown_ftmo.get_json()["trader"], shown_ftmo.get_json()["notice"]) == ("ftmo", "")
    unknown = client.get("/api/controls?trader=../ftmo", headers=BEARER, base_url=LOCAL)
    assert unknown.status_code == 400 and "unknown trader" in unknown.get_json()["error"]

    headers = {**BEARER, "X-CSRF-Token": session(client, BEARER)}
    for action in ("halt", "close_all", "resume", "close/5"):
        path = f"/api/controls/{action}"
        wrong = client.post(f"{path}?trader=demo", headers=headers, base_url=LOCAL)
        assert wrong.status_code == 409, action
        assert "nothing was done" in wrong.get_json()["error"]
        assert "act on trader ftmo only" in wrong.get_json()["error"]
        unnamed = client.post(path, headers=headers, base_url=LOCAL)  # would mean demo
        assert unnamed.status_code == 400 and "name the trader" in unnamed.get_json()["error"]
        for name in ("nobody", "../ftmo", str(mine), "ftmo.db", ""):
            answer = client.post(path, query_string={"trader": name}, headers=headers,
                                 base_url=LOCAL)  # fmt: skip
            assert answer.status_code == 400, (action, name)
            assert "unknown trader" in answer.get_json()["error"]
    assert untouched(kill_switch) and untouched(demo_switch)

    done = client.post("/api/controls/halt?trader=ftmo", headers=headers, base_url=LOCAL)
    assert done.status_code == 200 and kill_switch_file_level(kill_switch, "halt") == "halt"
    asked = client.post("/api/controls/close/5?trader=ftmo", headers=headers, base_url=LOCAL)
    assert asked.status_code == 202 and [r.ticket for r in close_requests(kill_switch)] == [5]
    assert untouched(demo_switch)


def test_the_controls_refuse_a_trader_whose_kill_switch_is_not_theirs_alone(tmp_path, kill_switch):
    mine, other = tmp_path / "ftmo.db", tmp_path / "demo.db"
    demo_switch = tmp_path / "DEMO_SWITCH"
    cases = {
        # the trader restarted with another KILL_SWITCH_FILE than the dashboard's settings
        "a button would write a file the trader never reads": (tmp_path / "OTHER", demo_switch),
        # demo restarted reading ftmo's kill-switch file: a button would halt or flatten both
        "traders ftmo and demo read the same kill-switch file": (kill_switch, kill_switch),
    }
    for why, (mine_reads, other_reads) in cases.items():
        trader_db(mine, kill_switch)
        trader_db(other, demo_switch)
        settings = ControlSettings(kill_switch, audit_db=mine)
        client = create_app([mine, other], token=TOKEN, controls=settings).test_client()
        headers = {**BEARER, "X-CSRF-Token": session(client, BEARER)}  # a page open already
        trader_db(mine, mine_reads)  # the newest heartbeat is what counts
        trader_db(other, other_reads)
        state = client.get("/api/controls?trader=ftmo", headers=BEARER, base_url=LOCAL)
        assert state.get_json()["enabled"] is False and "csrf_token" not in state.get_json()
        assert why in state.get_json()["why"] and why in state.get_json()["notice"]
        for action in ("halt", "close_all", "close/7"):
            refused = client.post(f"/api/controls/{action}?trader=ftmo", headers=headers,
                                  base_url=LOCAL)  # fmt: skip
            assert refused.status_code == 409, (why, action)
            assert why in refused.get_json()["error"]
        assert untouched(kill_switch) and untouched(demo_switch)

    # AUDIT_DB is none of the databases served: no trader to act on, no session handed out
    settings = ControlSettings(kill_switch, audit_db=tmp_path / "elsewhere.db")
    client = create_app([mine, other], token=TOKEN, controls=settings).test_client()
    state = client.get("/api/controls", headers=BEARER, base_url=LOCAL).get_json()
    assert (state["enabled"], state["acts_on"]) == (False, None)
    assert "elsewhere.db) this dashboard does not serve" in state["why"]
    refused = client.post("/api/controls/halt?trader=ftmo", headers=BEARER, base_url=LOCAL)
    assert refused.status_code == 403 and untouched(kill_switch)


def test_on_the_command_line_a_single_db_is_audit_db_and_several_leave_it(tmp_path):
    folder = tmp_path / "traders"
    folder.mkdir()
    a, b, c = (trader_db(folder / f"{name}.db") for name in "abc")
    env = tmp_path / "test.env"
    env.write_text(f"DASHBOARD_CONTROLS=on\nAUDIT_DB={b}\nKILL_SWITCH_FILE={tmp_path}/KS\n")

    def controls(*dbs: Path, trader: str = "a") -> dict:
        argv = ["--config", str(env)] + [arg for db in dbs for arg in ("--db", str(db))]
        client = app_for(*settings_from_args(argv)).test_client()
        return client.get(f"/api/controls?trader={trader}", base_url=LOCAL).get_json()

    assert controls(a)["acts_on"] == "a"  # as `live_trader.py --db a.db` trades a
    several = controls(a, b)  # not the first one: the settings' AUDIT_DB
    assert (several["enabled"], several["acts_on"], several["trader"]) == (True, "b", "a")
    assert "a can only be watched here" in several["notice"]
    assert controls(a, c)["enabled"] is False  # AUDIT_DB not served: no trader to act on
    assert "does not serve" in controls(a, c)["why"]
