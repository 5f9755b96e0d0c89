"""One frozen settings object, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it (never its value)."""


def _secrets(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything configurable, as named in CONTRACT.md."""

    db_path: str = "./meetsync.db"
    redis_url: str | None = None
    savvycal_webhook_secrets: tuple[str, ...] = ()
    standard_webhook_secrets: tuple[str, ...] = ()
    savvycal_api_url: str = "https://api.savvycal.app/v1"
    savvycal_api_token: str | None = None
    savvycal_account_id: str | None = None
    reconcile_interval_seconds: int = 300
    api_requests_per_minute: int = 300
    read_token: str | None = None
    claim_idle_ms: int = 30_000
    clock_skew_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            db_path=env.get("MEETSYNC_DB") or "./meetsync.db",
            redis_url=env.get("REDIS_URL") or None,
            savvycal_webhook_secrets=_secrets(env.get("SAVVYCAL_WEBHOOK_SECRET")),
            standard_webhook_secrets=_secrets(env.get("STANDARD_WEBHOOK_SECRET")),
            savvycal_api_url=(env.get("SAVVYCAL_API_URL") or cls.savvycal_api_url).rstrip("/"),
            savvycal_api_token=env.get("SAVVYCAL_API_TOKEN") or None,
            savvycal_account_id=env.get("SAVVYCAL_ACCOUNT_ID") or None,
            reconcile_interval_seconds=_positive_int(
                env, "RECONCILE_INTERVAL_SECONDS", cls.reconcile_interval_seconds
            ),
            api_requests_per_minute=_positive_int(
                env, "SAVVYCAL_API_REQUESTS_PER_MINUTE", cls.api_requests_per_minute
            ),
            read_token=env.get("MEETSYNC_READ_TOKEN") or None,
            claim_idle_ms=_positive_int(env, "MEETSYNC_CLAIM_IDLE_MS", cls.claim_idle_ms),
            clock_skew_seconds=_positive_int(
                env, "MEETSYNC_CLOCK_SKEW_SECONDS", cls.clock_skew_seconds
            ),
        )

    def require_receiver_secrets(self) -> None:
        """The web process needs a read token and at least one webhook secret."""
        if not (self.savvycal_webhook_secrets or self.standard_webhook_secrets):
            raise SettingsError(
                "SAVVYCAL_WEBHOOK_SECRET or STANDARD_WEBHOOK_SECRET must be set"
            )
        if not self.read_token:
            raise SettingsError("MEETSYNC_READ_TOKEN must be set")

    def require_redis(self) -> str:
        if not self.redis_url:
            raise SettingsError("REDIS_URL must be set (or use `meetsync dev`)")
        return self.redis_url

    def require_api_token(self) -> str:
        if not self.savvycal_api_token:
            raise SettingsError("SAVVYCAL_API_TOKEN must be set")
        return self.savvycal_api_token
