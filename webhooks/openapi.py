"""``GET /openapi.json``: an OpenAPI 3.1 description of every route the web process serves.

Kept by hand as data, next to the routes it describes, and kept true by a test that runs
schemathesis against the running app (tests/webhooks/test_openapi_conformance.py). Provider
names are not written here: the ``provider`` path parameters are enums of the providers this
process serves, and the webhook headers are those the providers declare
(``WebhookProvider.signature_headers``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetsync.providers import WebhookProvider
from meetsync.webhooks.operator import COOKIE
from meetsync.webhooks.receiver import MAX_BODY_BYTES

JSON = "application/json"
_NULLABLE_TEXT = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Mapping[str, Any], description: str,
          headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {JSON: {"schema": dict(schema)}}}
    if headers:
        answer["headers"] = dict(headers)
    return answer


def _error(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return _json(_ref("Error"), description, headers)


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_UNAUTHORIZED = _error("Missing or invalid bearer token",
                       {"WWW-Authenticate": {"schema": {"type": "string"}}})


def _path(name: str, description: str, enum: Iterable[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if enum is not None:
        schema["enum"] = sorted(enum)
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


def _schemas(all_providers: list[str]) -> dict[str, Any]:
    return {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}}},
        "Accepted": {
            "type": "object", "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["queued", "fetch queued", "ignored"]},
                "id": {"type": "string", "description": "The queued event's id"},
            },
        },
        "Meeting": {
            "type": "object",
            "description": "A meeting as the mirror holds it: the provider's AppointmentMeeting "
                           "fields, the appointment it belongs to, and sync metadata. "
                           "Credentials (host_url, password) are served only on the current "
                           "meeting of a live appointment, until they expire.",
            "required": [
                "id", "object", "provider", "status", "conferencing_provider",
                "external_meeting_id", "join_url", "host_url", "password",
                "host_url_expires_at", "host_url_refresh_pending", "password_expires_at",
                "error_message", "appointment_id", "replaced_by", "synced_at",
                "source_version_us",
            ],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "appointment_meeting"},
                "provider": {"type": "string", "enum": all_providers},
                "status": _NULLABLE_TEXT,
                "conferencing_provider": _NULLABLE_TEXT,
                "external_meeting_id": _NULLABLE_TEXT,
                "join_url": _NULLABLE_TEXT,
                "host_url": {**_NULLABLE_TEXT, "description": "A credential"},
                "password": {**_NULLABLE_TEXT, "description": "A credential"},
                "host_url_expires_at": _NULLABLE_TIME,
                "host_url_refresh_pending": {
                    "type": "boolean",
                    "description": "The provider renews host_url on a fetch and the mirror "
                                   "holds no live one: ?fresh=true asks for it"},
                "password_expires_at": _NULLABLE_TIME,
                "error_message": _NULLABLE_TEXT,
                "appointment_id": {"type": "string"},
                "replaced_by": {**_NULLABLE_TEXT,
                                "description": "The meeting that superseded this one"},
                "synced_at": {"type": "string",
                              "description": "When the mirror last wrote this meeting (UTC)"},
                "source_version_us": {
                    "type": "integer",
                    "description": "When the provider's snapshot was taken, µs since the epoch"},
                "host_url_source": {
                    **_NULLABLE_TEXT,
                    "description": "The provider whose host_url is served (this meeting's, or "
                                   "a linked meeting's), or null"},
                "linked": {
                    "oneOf": [{"type": "null"}, _ref("Link")],
                    "description": "The same meeting as another provider the mirror holds "
                                   "hosts it (its external_meeting_id is that provider's id)"},
            },
        },
        "Link": {
            "type": "object",
            "required": ["provider", "meeting_id", "host_url", "host_url_expires_at",
                         "host_url_refresh_pending"],
            "properties": {
                "provider": {"type": "string", "enum": all_providers},
                "meeting_id": {"type": "string"},
                "host_url": {**_NULLABLE_TEXT, "description": "A credential"},
                "host_url_expires_at": _NULLABLE_TIME,
                "host_url_refresh_pending": {"type": "boolean"},
            },
        },
        "Participant": {
            "type": "object", "required": ["id", "role", "unique_id", "display_name"],
            "properties": {"id": {"type": "string"}, "role": _NULLABLE_TEXT,
                           "unique_id": _NULLABLE_TEXT, "display_name": _NULLABLE_TEXT},
        },
        "Occurrence": {
            "type": "object",
            "description": "One occurrence of a recurring appointment; status as its provider "
                           "gives it",
            "required": ["id", "start_at", "end_at", "status"],
            "properties": {"id": {"type": "string"}, "start_at": _NULLABLE_TIME,
                           "end_at": _NULLABLE_TIME, "status": _NULLABLE_TEXT},
        },
        "Appointment": {
            "type": "object",
            "required": ["id", "provider", "account", "meeting_id", "status", "start_at",
                         "end_at", "synced_at", "needs_refetch", "participants", "occurrences",
                         "meeting"],
            "properties": {
                "id": {"type": "string"},
                "provider": {"type": "string", "enum": all_providers},
                "account": {"type": "string"},
                "meeting_id": _NULLABLE_TEXT,
                "status": _NULLABLE_TEXT,
                "start_at": _NULLABLE_TIME,
                "end_at": _NULLABLE_TIME,
                "synced_at": {"type": "string"},
                "needs_refetch": {"type": "boolean",
                                  "description": "Two snapshots share a timestamp: a refetch "
                                                 "will settle which is current"},
                "participants": {"type": "array", "items": _ref("Participant")},
                "occurrences": {"type": "array", "items": _ref("Occurrence"),
                                "description": "A recurring appointment's occurrences, by "
                                               "start_at then id (empty otherwise)"},
                "meeting": {"oneOf": [{"type": "null"}, _ref("Meeting")]},
            },
        },
        "Change": {
            "type": "object",
            "required": ["seq", "entity", "entity_id", "appointment_id", "provider",
                         "changed_at"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "entity": {"type": "string", "enum": ["appointment", "meeting", "participant",
                                                    "occurrence"],
                           "description": "What changed (further entities may appear)"},
                "entity_id": {"type": "string"},
                "appointment_id": {"type": "string"},
                "provider": {"type": "string"},
                "changed_at": {"type": "string", "description": "UTC, when it was committed"},
            },
        },
        "ChangePage": {
            "type": "object", "required": ["changes", "next"],
            "properties": {
                "changes": {"type": "array", "items": _ref("Change")},
                "next": {"type": "integer", "minimum": 0,
                         "description": "The cursor for the next page (since=next)"},
            },
        },
        "Status": {
            "type": "object", "required": ["status"],
            "properties": {"status": {"type": "string"},
                           "failed": {"type": "array", "items": {
                               "type": "string", "enum": ["redis", "queue", "database"]}}},
        },
    }


def _webhook_operation(headers: list[str], with_account: bool) -> dict[str, Any]:
    parameters = [_path("provider", "A provider this process receives webhooks for",
                        enum=None)]
    if with_account:
        parameters.append(_path("account", "The account the delivery is for (its secret must "
                                           "have signed it)"))
    parameters += [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
         "description": "A signature header of one of the providers' schemes"}
        for name in headers
    ]
    return {
        "summary": "Receive a provider's webhook delivery"
                   + (" for one account" if with_account else ""),
        "tags": ["webhooks"],
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "description": f"The provider's envelope, as it sent it (at most {MAX_BODY_BYTES} "
                           "bytes); verified against the raw bytes",
            "content": {JSON: {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": _json({"type": "object"}, "An endpoint handshake, answered with the "
                                             "provider's reply; nothing queued"),
            "202": _json(_ref("Accepted"), "Durably queued (a duplicate too), a fetch queued, "
                                           "or an event type that is counted and ignored"),
            "400": _error("Verified, but not a valid envelope"),
            "401": _error("Missing or invalid signature, or no secret configured for the "
                          "scheme used"),
            "404": _error("Unknown provider"),
            "413": _error(f"Body over {MAX_BODY_BYTES} bytes"),
            "503": _error("The queue is unreachable: retry later", _RETRY_AFTER),
        },
    }


def _read_operation(
    summary: str, key: str, qualified: bool, served: list[str], body: str = "Meeting"
) -> dict[str, Any]:
    parameters = []
    if qualified:
        parameters.append(_path("provider", "Ids are unique only within a provider",
                                enum=served))
    parameters.append(_path(key, "As the provider names it"))
    parameters.append({
        "name": "fresh", "in": "query", "required": False,
        "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]},
        "description": "When host_url_refresh_pending, ask the worker to refetch and wait "
                       "(bounded) for a live host_url"})
    return {
        "summary": summary, "tags": ["read"], "security": [{"bearer": []}],
        "parameters": parameters,
        "responses": {"200": _json(_ref(body), f"The {body.lower()}"),
                      "400": _error("fresh is not one of its values"),
                      "401": _UNAUTHORIZED,
                      "404": _error("Unknown (or not yet mirrored)")},
    }


_CURSOR = {"name": "since", "in": "query", "required": False,
           "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
           "description": "Changes after this seq"}


def _operator_paths() -> dict[str, Any]:
    """``/metrics`` and the status page (webhooks/operator.py): text and HTML, not JSON."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    html = {"text/html": {"schema": {"type": "string"}}}
    sign_in = {"description": "Not signed in: the sign-in form", "content": html,
               "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}
    return {
        "/metrics": {"get": {
            "summary": "Prometheus metrics of this process, and figures read at scrape time "
                       "from Redis and the mirror",
            "description": "Open unless MEETSYNC_METRICS_TOKEN is set. The applier's series "
                           "appear only where events are applied (a worker's own port, or "
                           "`meetsync dev`).",
            "tags": ["operator"], "security": [{}, {"metricsBearer": []}],
            "responses": {
                "200": {"description": "The text exposition format 0.0.4", "content": text},
                "401": {"description": "MEETSYNC_METRICS_TOKEN is set and was not given",
                        "content": text,
                        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
            },
        }},
        "/status": {"get": {
            "summary": "The status page (HTML): queue, counters, accounts, runs, dead letters",
            "tags": ["operator"], "security": [{"bearer": []}, {"statusCookie": []}],
            "responses": {"200": {"description": "The page", "content": html},
                          "401": sign_in},
        }},
        "/status/login": {"post": {
            "summary": "The status page's sign-in form: the read token, exchanged for a "
                       "12-hour cookie that holds an expiry and its HMAC, never the token",
            "tags": ["operator"],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "properties": {"token": {"type": "string"}}}}}},
            "responses": {
                "303": {"description": "Signed in: to /status, with the session cookie",
                        "headers": {"Location": {"schema": {"type": "string"}},
                                    "Set-Cookie": {"schema": {"type": "string"}}}},
                "401": {"description": "Not the read token: the form again", "content": html},
            },
        }},
    }


def openapi_document(webhooks: Mapping[str, WebhookProvider],
                     all_providers: Iterable[str], legacy: str) -> dict[str, Any]:
    """The description of this process's routes: ``webhooks`` are the providers it receives
    for, ``all_providers`` every provider the read API knows, ``legacy`` the one whose
    unqualified read routes stay."""
    names = sorted(all_providers)
    headers = sorted({h.lower() for hooks in webhooks.values() for h in hooks.signature_headers})
    receive, receive_account = (_webhook_operation(headers, False),
                                _webhook_operation(headers, True))
    for operation in (receive, receive_account):
        operation["parameters"][0]["schema"]["enum"] = sorted(webhooks)
    health = {"200": _json(_ref("Status"), "OK")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meetsync",
            "version": "1",
            "description": "Webhook receiver, read API, change feed and operator pages of a "
                           "meetsync mirror.",
        },
        "components": {
            "schemas": _schemas(names),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "MEETSYNC_READ_TOKEN"},
                "metricsBearer": {"type": "http", "scheme": "bearer",
                                  "description": "MEETSYNC_METRICS_TOKEN, when set"},
                "statusCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE,
                                 "description": "Set by POST /status/login"},
            },
        },
        "paths": {
            "/webhooks/{provider}": {"post": receive},
            "/webhooks/{provider}/{account}": {"post": receive_account},
            "/healthz": {"get": {"summary": "The process answers", "tags": ["health"],
                                 "responses": health}},
            "/readyz": {"get": {
                "summary": "Redis and the mirror answer", "tags": ["health"],
                "responses": {**health, "503": _json(_ref("Status"), "Not ready: failed "
                                                                     "lists what is down")}}},
            "/openapi.json": {"get": {
                "summary": "This description", "tags": ["meta"],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
            "/v1/appointments/{appointment_id}/meeting": {"get": _read_operation(
                f"The appointment's current meeting ({legacy})", "appointment_id", False,
                names)},
            "/v1/meetings/{meeting_id}": {"get": _read_operation(
                f"That meeting ({legacy}), with replaced_by when superseded", "meeting_id",
                False, names)},
            "/v1/{provider}/appointments/{appointment_id}/meeting": {"get": _read_operation(
                "The appointment's current meeting", "appointment_id", True, names)},
            "/v1/{provider}/meetings/{meeting_id}": {"get": _read_operation(
                "That meeting, with replaced_by when superseded", "meeting_id", True, names)},
            "/v1/{provider}/appointments/{appointment_id}": {"get": _read_operation(
                "The appointment, its participants, its occurrences and its current meeting",
                "appointment_id", True, names, body="Appointment")},
            "/v1/changes": {"get": {
                "summary": "The change log after a cursor, oldest first", "tags": ["changes"],
                "security": [{"bearer": []}],
                "parameters": [_CURSOR, {
                    "name": "limit", "in": "query", "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                               "default": 100}}],
                "responses": {"200": _json(_ref("ChangePage"), "A page of changes"),
                              "400": _error("since or limit out of range"),
                              "401": _UNAUTHORIZED},
            }},
            "/v1/changes/stream": {"get": {
                "summary": "The change log as Server-Sent Events: the backlog, then live",
                "description": "Each event: `id: <seq>`, `event: change`, `data: <Change>`. "
                               "Comment lines (`: heartbeat`) keep the connection alive. "
                               "Reconnect with Last-Event-ID to resume after the last seq "
                               "seen.",
                "tags": ["changes"], "security": [{"bearer": []}],
                "parameters": [_CURSOR, {
                    "name": "Last-Event-ID", "in": "header", "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    "description": "Resume after this seq (beats since)"}],
                "responses": {
                    "200": {"description": "An endless event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "400": _error("Last-Event-ID or since out of range"),
                    "401": _UNAUTHORIZED,
                    "503": _error("Shutting down", _RETRY_AFTER),
                },
            }},
            **_operator_paths(),
        },
    }


def openapi_route(document: Mapping[str, Any]) -> Route:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(document)

    return Route("/openapi.json", endpoint, methods=["GET"])


__all__ = ["openapi_document", "openapi_route"]
