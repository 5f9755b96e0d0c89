"""The receiving end: HTTP in, verified events onto the queue, an answer out."""

from __future__ import annotations

from meetsync.webhooks.app import create_app

__all__ = ["create_app"]
