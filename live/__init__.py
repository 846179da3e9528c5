"""The live trader's package: its main classes by name, `from live import LiveTrader, LiveConfig`.

Each name is imported from its module on first use (PEP 562), so `import live` alone pulls in
nothing heavy (no pandas, no Flask) and `python -m live.history` loads only what it needs.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that owns it
_EXPORTS = {
    "LiveTrader": "live.live_trader",
    "LiveConfig": "live.config",
    "MT5Constants": "live.config",
    "setup_logging": "live.json_logs",
    "MT5Connector": "live.mt5_connector",
    "OrderExecutor": "live.order_executor",
    "StateManager": "live.state_manager",
    "AuditLogger": "live.audit_logger",
    "AuditReader": "live.audit_reader",
    "BacktestingBridge": "live.backtesting_bridge",
    "get_strategy_from_file": "live.backtesting_bridge",
    "build_order_request": "live.backtesting_bridge",
    "AlertSystem": "live.alerts",
    "PaperBroker": "live.paper_broker",
    "PositionManager": "live.positions",
    "RiskGate": "live.risk_gate",
    "AccountGuard": "live.account_guard",
    "MarketHours": "live.market_hours",
    "create_app": "live.dashboard",
    "health_report": "live.health",
    "TraderError": "live.errors",
    "ConfigError": "live.errors",
    "BrokerError": "live.errors",
    "BrokerUnavailable": "live.errors",
    "RetryableOrderError": "live.errors",
    "OrderRejected": "live.errors",
    "OutcomeUnknown": "live.errors",
    "AuditWriteError": "live.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'live' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
