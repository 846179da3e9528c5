"""The trader's side of the close requests other processes leave for it (the dashboard's
"close" button; the file protocol is live/control_requests.py): each loop, after the
positions are synced, every waiting request is carried out once and recorded with who asked.

Only this trader's own positions (its magic number) are closed, through the normal order
path (live/positions.py: a write-ahead client id, retries, reconciliation); any other ticket
is refused, and the refusal is recorded too. The kill-switch requests need nothing here: the
risk gate reads the kill-switch file at the start of every loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from live.audit_health import AuditHealth
from live.audit_logger import AuditLogger
from live.config import LiveConfig
from live.control_requests import CloseRequest, close_requests, forget
from live.errors import AuditWriteError, BrokerError
from live.order_executor import ExecutionResult, make_client_order_id
from live.state_manager import StateManager

logger = logging.getLogger(__name__)

_NO_BAR = datetime(1970, 1, 1, tzinfo=UTC)  # a request belongs to no bar


class ControlDesk:
    """Carries out the close requests waiting beside the kill-switch file."""

    def __init__(
        self,
        config: LiveConfig,
        *,
        state: StateManager,
        close: Callable[[Any, str, str], ExecutionResult],
        all_positions: Callable[[], Iterable[Any]],
        audit: AuditLogger,
        health: AuditHealth,
    ) -> None:
        self.config = config
        self.state = state
        self._close = close
        self._all_positions = all_positions
        self.audit = audit
        self._health = health

    def serve(self) -> int:
        """Carry out the waiting requests, oldest first; returns how many were taken. A
        request whose close raised a broker error waits for the next loop (its client id
        makes the second try the same order)."""
        taken = 0
        for request in close_requests(self.config.kill_switch_file):
            self._serve(request)
            forget(request)
            taken += 1
        return taken

    def _serve(self, request: CloseRequest) -> None:
        position = self.state.positions.get(request.ticket)
        if position is None:
            self._refuse(request, self._refusal(request))
            return
        # the request's key makes the id unique and the same on a second try
        cid = make_client_order_id(
            "control", position.symbol, _NO_BAR, f"close_{request.ticket}_{request.key}"
        )
        asked = _asker(request)
        result = self._close(position, cid, f"close asked from {asked}")
        done = result.filled or result.status == "not_needed"
        text = (
            f"position #{request.ticket} {position.symbol} {float(position.volume):g} lots "
            f"{'closed' if done else 'not closed (' + result.status + ')'} on the request of "
            f"{asked}"
        )
        if not done and result.message:
            text += f": {result.message}"
        logger.warning(text, extra={"symbol": position.symbol, "ticket": request.ticket})
        self._record(
            "close_requested",
            text,
            request,
            symbol=position.symbol,
            level="warning" if done else "error",
            status=result.status,
            client_order_id=cid,
            volume=float(position.volume),
        )

    def _refusal(self, request: CloseRequest) -> str:
        if request.problem:
            return f"close request refused: {request.problem}"
        try:
            other = next(
                (p for p in self._all_positions() if int(p.ticket) == request.ticket), None
            )
        except BrokerError:  # the refusal stands either way; only its wording is vaguer
            other = None
        if other is not None and int(other.magic) != self.config.magic_number:
            return (
                f"close of position #{request.ticket} ({other.symbol}) refused: it carries "
                f"magic number {other.magic}, not this trader's MAGIC_NUMBER "
                f"{self.config.magic_number}; it is left alone"
            )
        return f"close of position #{request.ticket} refused: no such open position of this trader"

    def _refuse(self, request: CloseRequest, text: str) -> None:
        text += f" (asked from {_asker(request)})"
        logger.warning(text, extra={"ticket": request.ticket})
        self._record("close_refused", text, request, level="warning")

    def _record(
        self,
        kind: str,
        text: str,
        request: CloseRequest,
        *,
        level: str,
        symbol: str | None = None,
        **data: object,
    ) -> None:
        origin = request.origin.as_dict() if request.origin else None
        try:
            self.audit.record_event(
                kind,
                text,
                level=level,
                symbol=symbol,
                data={"ticket": request.ticket, "origin": origin, **data},
                fallback=True,
            )
        except AuditWriteError as exc:
            self._health.failed(exc)


def _asker(request: CloseRequest) -> str:
    return request.origin.describe() if request.origin else "an unnamed asker"
