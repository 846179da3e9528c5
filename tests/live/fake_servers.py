"""Real HTTP servers on 127.0.0.1 standing in for Telegram's Bot API and for a webhook
receiver, recording what they receive and misbehaving on request."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Received:
    """One request: the method (Telegram) or path, its parameters, headers and raw body."""

    name: str
    params: dict
    headers: dict
    body: bytes
    at: float = field(default_factory=time.monotonic)


class FakeServer:
    """A ThreadingHTTPServer in a thread; `answers` holds scripted replies, served in order,
    before the normal one (status, body dict, delay seconds)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[tuple[int, dict, float]] = deque()
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server.handle(self)

            do_GET = do_POST

            def log_message(self, *_args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        record = Received(
            self.name_of(handler.path), self.params_of(handler, body), dict(handler.headers), body
        )
        with self.lock:
            scripted = (
                self.answers.popleft() if self.answers and self.scripted_for(record) else None
            )
        status, reply, delay = scripted or (200, self.reply(record), 0.0)
        if delay:
            time.sleep(delay)  # a slow receiver, on purpose
        with self.arrived:
            self.received.append(record)
            self.arrived.notify_all()
        payload = json.dumps(reply).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def wait_for(
        self, count: int, name: str | None = None, timeout: float = 10.0
    ) -> list[Received]:
        """Block until `count` requests (of `name`) have arrived; returns them."""

        def matching() -> list[Received]:
            return [r for r in self.received if name is None or r.name == name]

        with self.arrived:
            if not self.arrived.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                raise AssertionError(
                    f"only {len(matching())} of {count} {name or ''} requests "
                    f"arrived within {timeout} s"
                )
            return matching()

    # to be specialised
    def name_of(self, path: str) -> str:
        return path

    def params_of(self, handler: BaseHTTPRequestHandler, body: bytes) -> dict:
        return json.loads(body or b"{}")

    def scripted_for(self, record: Received) -> bool:
        return True

    def reply(self, record: Received) -> dict:
        return {"ok": True}


class FakeTelegram(FakeServer):
    """The Bot API methods the trader uses: getMe, sendMessage, getUpdates."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.updates: deque[dict] = deque()
        self.next_update = 1
        self.next_message = 1
        super().__init__()

    def name_of(self, path: str) -> str:
        prefix = f"/bot{self.token}/"
        return path[len(prefix) :] if path.startswith(prefix) else f"WRONG TOKEN {path}"

    def params_of(self, handler: BaseHTTPRequestHandler, body: bytes) -> dict:
        if "json" in (handler.headers.get("Content-Type") or ""):
            return json.loads(body or b"{}")
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}

    def scripted_for(self, record: Received) -> bool:
        return record.name == "sendMessage"  # scripted failures hit sends, not polling

    def get_updates_calls(self) -> list[dict]:
        return [r.params for r in self.received if r.name == "getUpdates"]

    def texts(self) -> list[str]:
        return [r.params["text"] for r in self.received if r.name == "sendMessage"]

    def queue_message(self, chat_id: int, text: str, *, date: float | None = None) -> None:
        """A message a user sends to the bot (at `date`, default now), returned by the next
        getUpdates."""
        with self.lock:
            self.updates.append(
                {
                    "update_id": self.next_update,
                    "message": {
                        "message_id": self.next_update,
                        "date": int(time.time() if date is None else date),
                        "text": text,
                        "chat": {"id": chat_id, "type": "private"},
                        "from": {"id": chat_id, "is_bot": False, "first_name": "Trader"},
                    },
                }
            )
            self.next_update += 1

    def reply(self, record: Received) -> dict:
        if record.name == "getMe":
            return {
                "ok": True,
                "result": {
                    "id": 1,
                    "is_bot": True,
                    "first_name": "Alerts",
                    "username": "alerts_test_bot",
                },
            }
        if record.name == "sendMessage":
            self.next_message += 1
            return {
                "ok": True,
                "result": {
                    "message_id": self.next_message,
                    "date": int(time.time()),
                    "chat": {"id": int(record.params["chat_id"]), "type": "private"},
                    "text": record.params["text"],
                },
            }
        if record.name == "getUpdates":
            return {"ok": True, "result": self._updates(record.params)}
        if record.name in ("close", "logOut", "deleteWebhook"):
            return {"ok": True, "result": True}
        return {"ok": False, "error_code": 404, "description": "Not Found"}

    def _updates(self, params: dict) -> list[dict]:
        """As the Bot API: a positive offset confirms (forgets) the updates before it; a
        negative one returns the last -offset updates and forgets the ones before those."""
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 0.5)
        while True:
            with self.lock:
                if offset < 0:
                    kept = list(self.updates)[offset:]
                    self.updates = deque(kept)
                    return kept
                while self.updates and self.updates[0]["update_id"] < offset:
                    self.updates.popleft()
                ready = list(self.updates)
            if ready or time.monotonic() >= deadline:
                return ready
            time.sleep(0.02)


def too_many_requests(retry_after: int) -> tuple[int, dict, float]:
    return (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        },
        0.0,
    )


def server_error() -> tuple[int, dict, float]:
    return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}, 0.0
