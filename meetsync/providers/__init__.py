"""The provider seam: everything provider-specific sits behind this small interface.

A provider module knows its signature scheme(s), its webhook envelope and its API; it hands the
rest of meetsync provider-neutral ``Event`` objects. Adding a provider is adding one package here
and one entry in ``PROVIDERS``.

Errors::

    ProviderError
    ├── SignatureError   delivery not verified: answer 401
    └── EnvelopeError    verified, but not an envelope we understand: answer 400
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from meetsync.events import Event
from meetsync.settings import Settings


class ProviderError(Exception):
    """Base of the seam's errors. Messages are safe to return to callers: no secrets, no body."""


class SignatureError(ProviderError):
    """Missing or invalid signature, or no secret configured for the scheme used."""


class EnvelopeError(ProviderError):
    """The body is not a valid envelope."""


class WebhookProvider(Protocol):
    """What the receiver needs of a provider."""

    name: str

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise ``SignatureError`` unless ``body`` is signed by a configured secret."""

    def parse(self, body: bytes) -> Event | str:
        """The event in a verified body; for an event type we ignore, its type name.

        Raises ``EnvelopeError`` for anything that is not a valid envelope.
        """


def webhook_providers(settings: Settings) -> dict[str, WebhookProvider]:
    """The providers the receiver serves, by the name in ``POST /webhooks/{name}``."""
    from meetsync.providers.savvycal import SavvyCalWebhooks

    return {"savvycal": SavvyCalWebhooks.from_settings(settings)}


__all__ = [
    "EnvelopeError",
    "ProviderError",
    "SignatureError",
    "WebhookProvider",
    "webhook_providers",
]
