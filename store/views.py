"""The mirror's entities as the read API serves them, built in one place: the read API
(``webhooks/read_api.py``) answers with them and the worker's deliveries to subscribers
(``worker/subscribers.py``) carry them, so a subscriber gets exactly what a read would.

``refreshable``: the providers whose ``host_url`` a fetch renews (``Provider.refreshable``),
passed in so the store names no provider.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from meetsync.store.mirror import Store


def served(
    store: Store, meeting: dict[str, Any] | None, refreshable: Container[str]
) -> dict[str, Any] | None:
    """A meeting view (``Store.meeting``/``current_meeting``) as served: with its link."""
    if meeting is None:
        return None
    return with_link(meeting, store.linked_meeting(meeting, refreshable=refreshable))


def meeting_view(
    store: Store, provider: str, meeting_id: str, refreshable: Container[str]
) -> dict[str, Any] | None:
    """``GET /v1/{provider}/meetings/{id}``."""
    return served(store, store.meeting(meeting_id, provider=provider,
                                       refreshable=provider in refreshable), refreshable)


def current_meeting_view(
    store: Store, provider: str, appointment_id: str, refreshable: Container[str]
) -> dict[str, Any] | None:
    """``GET /v1/{provider}/appointments/{id}/meeting``."""
    return served(store, store.current_meeting(appointment_id, provider=provider,
                                               refreshable=provider in refreshable), refreshable)


def appointment_view(
    store: Store, provider: str, appointment_id: str, refreshable: Container[str]
) -> dict[str, Any] | None:
    """``GET /v1/{provider}/appointments/{id}``: the appointment, its ``participants``, its
    ``occurrences`` and its current ``meeting``."""
    found = store.appointment(appointment_id, provider=provider)
    if found is None:
        return None
    return {**found, "participants": store.participants(appointment_id, provider=provider),
            "occurrences": store.occurrences(appointment_id, provider=provider),
            "meeting": current_meeting_view(store, provider, appointment_id, refreshable)}


def entity_view(
    store: Store, entity: str, provider: str, appointment_id: str, entity_id: str,
    refreshable: Container[str],
) -> dict[str, Any] | None:
    """One change log entry's entity as the read API shows it now (a participant or an
    occurrence as its appointment's view lists it); None when it is gone."""
    if entity == "appointment":
        return appointment_view(store, provider, entity_id, refreshable)
    if entity == "meeting":
        return meeting_view(store, provider, entity_id, refreshable)
    rows = (store.participants(appointment_id, provider=provider) if entity == "participant"
            else store.occurrences(appointment_id, provider=provider)
            if entity == "occurrence" else [])
    return next((row for row in rows if row["id"] == entity_id), None)


def with_link(meeting: dict[str, Any], linked: dict[str, Any] | None) -> dict[str, Any]:
    """The meeting view as served: ``linked`` (or None), and ``host_url_source``, the provider
    whose ``host_url`` is served. Without a live one of its own it serves the linked meeting's
    (``host_url_expires_at`` then that one's); ``host_url_refresh_pending`` says whether a
    refetch of either could give one."""
    own = meeting["host_url"] is not None
    view = {**meeting, "host_url_source": meeting["provider"] if own else None, "linked": None}
    if linked is None:
        return view
    view["linked"] = {
        "provider": linked["provider"],
        "meeting_id": linked["id"],
        "host_url": linked["host_url"],
        "host_url_expires_at": linked["host_url_expires_at"],
        "host_url_refresh_pending": linked["host_url_refresh_pending"],
    }
    if own:
        return view
    if linked["host_url"] is not None:
        view.update(host_url=linked["host_url"],
                    host_url_expires_at=linked["host_url_expires_at"],
                    host_url_source=linked["provider"], host_url_refresh_pending=False)
    else:
        view["host_url_refresh_pending"] = (
            meeting["host_url_refresh_pending"] or linked["host_url_refresh_pending"])
    return view


__all__ = ["appointment_view", "current_meeting_view", "entity_view", "meeting_view", "served",
           "with_link"]
