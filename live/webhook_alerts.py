"""The webhook alert channel: JSON POSTs, signed with HMAC-SHA256 in the X-Signature-SHA256
header when WEBHOOK_SECRET is set; 429 and 5xx answers are retried, other refusals are not."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from live.alert_delivery import Alert, DeliveryError

logger = logging.getLogger(__name__)


class WebhookChannel:
    """JSON POSTs, signed when a secret is set."""

    name = "webhook"

    def __init__(self, url: str, secret: str = "", timeout_s: float = 5.0) -> None:
        import requests

        self.url, self._secret, self._timeout = url, secret, timeout_s
        self._session = requests.Session()

    def body(self, text: str, alert: Alert) -> bytes:
        return json.dumps(
            {
                "kind": alert.kind,
                "severity": alert.severity,
                "text": text,
                "time": alert.created.isoformat(),
                "data": alert.data,
            },
            default=str,
            sort_keys=True,
        ).encode()

    def signature(self, body: bytes) -> str:
        return hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()

    def send(self, text: str, alert: Alert) -> None:
        import requests

        body = self.body(text, alert)
        headers = {"Content-Type": "application/json"}
        if self._secret:
            headers["X-Signature-SHA256"] = self.signature(body)
        try:
            response = self._session.post(
                self.url, data=body, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from None
        if response.status_code < 300:
            return
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(
                f"webhook answered {response.status_code}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        raise DeliveryError(f"webhook answered {response.status_code}", permanent=True)

    def close(self) -> None:
        self._session.close()


def _retry_after(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None
