"""Prometheus metrics of the trader, rendered from the status its last heartbeat recorded
(the dashboard serves them at /metrics; the trader itself opens no port)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class _StatusCollector:
    """A one-shot collector over one status dict (see dashboard.trader_status)."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def collect(self) -> list[Any]:
        s = self.status
        metrics = s.get("metrics", {})
        execution = s.get("execution", {})
        families = [
            _gauge(
                "trader_up",
                "1 while the trader's heartbeat is fresh",
                1.0 if s.get("state") == "running" else 0.0,
            ),
            _gauge(
                "trader_heartbeat_age_seconds",
                "Seconds since the last heartbeat",
                s.get("heartbeat_age_s"),
            ),
            _gauge(
                "trader_loop_duration_seconds",
                "Duration of the last loop iteration",
                metrics.get("loop_seconds"),
            ),
            _gauge(
                "trader_alert_queue_depth",
                "Alerts waiting to be delivered",
                metrics.get("alert_queue_depth"),
            ),
            _counter(
                "trader_reconnects",
                "Reconnections to the terminal this session",
                metrics.get("reconnects"),
            ),
            _counter(
                "trader_closed_bars", "Closed bars decided on this session", metrics.get("bars")
            ),
        ]
        latency = GaugeMetricFamily(
            "trader_decision_latency_ms",
            "Closed bar seen to order_send called, over the last 1,000 orders",
            labels=["quantile"],
        )
        for quantile, key in (
            ("0.5", "decision_latency_ms_p50"),
            ("0.99", "decision_latency_ms_p99"),
        ):
            if metrics.get(key) is not None:
                latency.add_metric([quantile], float(metrics[key]))
        orders = CounterMetricFamily(
            "trader_orders", "order_send results this session by return code", labels=["retcode"]
        )
        for retcode, count in sorted(execution.get("by_retcode", {}).items()):
            orders.add_metric([str(retcode)], float(count))
        account = s.get("account") or {}
        money = [
            _gauge(f"trader_account_{key}", f"Account {key}", account.get(key))
            for key in ("balance", "equity", "margin", "margin_free")
        ]
        return [f for f in [*families, latency, orders, *money] if f is not None]


def _gauge(name: str, documentation: str, value: object) -> GaugeMetricFamily | None:
    return None if value is None else GaugeMetricFamily(name, documentation, value=float(value))


def _counter(name: str, documentation: str, value: object) -> CounterMetricFamily | None:
    return None if value is None else CounterMetricFamily(name, documentation, value=float(value))


def render_metrics(status: dict[str, Any]) -> tuple[bytes, str]:
    """The Prometheus text exposition of `status`, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(status))
    return generate_latest(registry), CONTENT_TYPE_LATEST
