"""SavvyCal: its webhook signatures and envelope, behind the ``WebhookProvider`` seam."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from meetsync.events import Event
from meetsync.providers import SignatureError
from meetsync.providers.savvycal.envelope import appointment_event, parse_envelope
from meetsync.providers.savvycal.signing import NativeScheme, StandardScheme
from meetsync.settings import Settings

_STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
_NATIVE_HEADER = "x-savvycal-signature"


class SavvyCalWebhooks:
    """Verifies and parses SavvyCal deliveries, natively signed or relayed via Standard Webhooks."""

    name: str = "savvycal"

    def __init__(
        self,
        savvycal_secrets: Iterable[str] = (),
        standard_secrets: Iterable[str] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._native = NativeScheme(savvycal_secrets)
        self._standard = StandardScheme(standard_secrets, clock)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> SavvyCalWebhooks:
        return cls(
            settings.savvycal_webhook_secrets, settings.standard_webhook_secrets, clock=clock
        )

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Accept a delivery that any scheme it carries headers for verifies.

        A delivery relayed through Svix may carry both schemes' headers; either is proof.
        """
        lowered = {key.lower(): value for key, value in headers.items()}
        native = lowered.get(_NATIVE_HEADER)
        if any(name in lowered for name in _STANDARD_HEADERS + _SVIX_HEADERS):
            msg_id, timestamp, signature = (
                lowered.get(std) or lowered.get(svix)
                for std, svix in zip(_STANDARD_HEADERS, _SVIX_HEADERS, strict=True)
            )
            try:
                self._standard.verify(body, msg_id, timestamp, signature)
                return
            except SignatureError:
                if native is None:
                    raise
        if native is not None:
            self._native.verify(body, native)
            return
        raise SignatureError("missing signature")

    def parse(self, body: bytes) -> Event | str:
        return parse_envelope(body, provider=self.name)


__all__ = ["SavvyCalWebhooks", "appointment_event"]
