"""Serving the simulated terminal over RPyC's classic protocol, as mt5linux expects a terminal.

On Linux, mt5linux connects to an RPyC classic server running next to a Windows terminal and
evaluates `import MetaTrader5 as mt5` and `mt5.<function>(...)` there. Here the simulator
answers that import. A classic server executes whatever a client sends, so it listens on
loopback only unless explicitly allowed otherwise. The terminal's state is saved after every
change and read back at start (state_file.py), so it survives client crashes and restarts.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from live.sim_terminal.state_file import StateFile
from live.sim_terminal.terminal import SimTerminal

logger = logging.getLogger(__name__)


def _addresses(host: str) -> list[tuple[int, str]]:
    """(family, address) of every address `host` resolves to, IPv4 and IPv6 alike."""
    found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [(family, str(sockaddr[0]).split("%")[0]) for family, _, _, _, sockaddr in found]


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback one (127.0.0.0/8, ::1).

    Every, not any: a name with a public address among its answers could be bound there.
    """
    try:
        addresses = _addresses(host)
        return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for _, a in addresses)
    except (OSError, ValueError):
        return False


def is_ipv6_only(host: str) -> bool:
    """Whether `host` has IPv6 addresses only (::1): the listener must be an IPv6 socket."""
    try:
        families = {family for family, _ in _addresses(host)}
    except OSError:
        return False
    return families == {socket.AF_INET6}


def serve(
    terminal: SimTerminal,
    *,
    host: str,
    port: int,
    state: Path | None = None,
    allow_remote: bool = False,
    ready: Any = None,
) -> None:
    """Serve `terminal` until SIGINT/SIGTERM. Raises ValueError for a refused host."""
    from rpyc.core import SlaveService
    from rpyc.utils.server import ThreadedServer

    if not is_loopback(host) and not allow_remote:
        raise ValueError(
            f"refusing to serve on {host}: a classic RPyC server runs any code a "
            "client sends; use 127.0.0.1, or --allow-remote on a trusted network"
        )
    if not is_loopback(host):
        logger.warning("!" * 72)
        logger.warning("SERVING ON %s: ANY CLIENT THAT REACHES THIS PORT CAN RUN CODE HERE", host)
        logger.warning("!" * 72)
    sys.modules["MetaTrader5"] = terminal  # what `import MetaTrader5` gives RPyC clients
    store = StateFile(state) if state is not None else None
    if store is not None:
        if store.load_into(terminal):
            logger.info("state restored from %s", state)
        terminal.on_change = lambda: store.save(terminal)
        store.save(terminal)

    class LowLatencyServer(ThreadedServer):
        """Replies leave at once: without TCP_NODELAY, Nagle's algorithm against the
        client's delayed ACKs adds tens of milliseconds to calls whose answer is sent in
        several small writes (order_send)."""

        def _accept_method(self, sock: socket.socket) -> None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super()._accept_method(sock)

    server = LowLatencyServer(
        SlaveService,
        hostname=host,
        port=port,
        reuse_addr=True,
        ipv6=is_ipv6_only(host),
        protocol_config={"allow_public_attrs": True, "sync_request_timeout": 300},
    )

    def stop(signum: int, _frame: object) -> None:
        logger.info("signal %s: saving state and stopping", signum)
        if store is not None:
            store.save(terminal)
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.listener.listen(server.backlog)  # listening before the port is announced
    message = f"sim terminal serving on {host}:{server.port}"
    print(message, flush=True)
    if ready is not None:
        ready(server.port)
    try:
        server.start()
    finally:
        if store is not None:
            store.save(terminal)
