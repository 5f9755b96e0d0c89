"""``POST /webhooks/{provider}``: read (bounded), verify, parse, queue, answer.

Statuses (README: HTTP): 202 queued, duplicate or ignored type; 200 with the provider's body for
an endpoint handshake; 400 not an envelope; 401 not signed by a configured secret; 404 unknown
provider; 413 body over 1 MiB; 503 with ``Retry-After`` when Redis cannot take the event.

A delivery the provider parses to a ``Hint`` queues a fetch of that appointment in its account's
refetch lane (once, however many hints arrive while it waits; past the lane's bound it collapses
into the account's "verify soon" mark: ``meetsync/queue.py``) instead of an event: what a hint
says is never written. An id the mirror holds goes before one it has never seen.

No input yields a 500: an unexpected error is logged by type and answered 503, so the sender
retries once the bug is fixed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from meetsync import metrics
from meetsync.events import Event, from_micros, received
from meetsync.providers import EnvelopeError, Hint, Reply, SignatureError, WebhookProvider
from meetsync.queue import (
    DEFAULT_BOUND,
    FIELD,
    IGNORED_TYPES,
    STAT_FIELDS,
    Outcome,
    QueueClient,
    count,
    dropped,
    stream_of,
)
from meetsync.queue import request as lane_request
from meetsync.storable import unstorable
from meetsync.webhooks.params import TooLarge, bounded_body

MAX_BODY_BYTES = 1_048_576
RETRY_AFTER_SECONDS = "5"

log = structlog.get_logger(__name__)

HINT_ANSWERS: Mapping[Outcome, str] = {
    "accepted": "fetch queued", "folded": "fetch queued", "collapsed": "verify soon",
    "dropped": "dropped: no API credentials",
}

_JSON = (b"content-type", b"application/json")
_RETRY = (b"retry-after", RETRY_AFTER_SECONDS.encode())


class Answer(NamedTuple):
    """What the receiver answers one delivery: plain data, so that the Starlette endpoint and
    the app's direct ASGI path (``webhooks/app.py``) send the same bytes and count the same."""

    status: int
    body: bytes  # JSON
    account: str | None = None  # the account whose secret signed it; None: not verified
    said: str | None = None  # a 202's "status" (queued, fetch queued, ...): the metric's outcome

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as ASGI sends them, in Starlette's order for ``json_response``'s."""
        length = (b"content-length", str(len(self.body)).encode())
        return [_RETRY, length, _JSON] if self.status == 503 else [length, _JSON]

    def response(self) -> Response:
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if self.status == 503 else None
        return Response(self.body, status_code=self.status, headers=headers,
                        media_type="application/json")


def json_response(
    status: int, payload: Mapping[str, object], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


def _answer(status: int, payload: Mapping[str, object], account: str | None = None) -> Answer:
    return Answer(status, orjson.dumps(payload), account)


def _unavailable(error: str, account: str | None = None) -> Answer:
    return _answer(503, {"error": error}, account)


def _accepted(said: str, account: str, **more: str) -> Answer:
    return Answer(202, orjson.dumps({"status": said, **more}), account, said)


# KEYS: the streams. ARGV: for each stream, how many of its entries follow; then the entries,
# stream by stream. Each XADD runs in a pcall, so an entry Redis refuses fails alone, as its own
# command in a pipeline did; the answer says, per entry in ARGV's order, 1 or the error's text.
_APPEND = """
local answers, at = {}, #KEYS + 1
for k = 1, #KEYS do
  for _ = 1, tonumber(ARGV[k]) do
    local ok, err = pcall(redis.call, 'XADD', KEYS[k], '*', 'FIELD', ARGV[at])
    if ok then answers[at - #KEYS] = 1
    elseif type(err) == 'table' and err.err then answers[at - #KEYS] = err.err
    else answers[at - #KEYS] = tostring(err) end
    at = at + 1
  end
end
return answers
""".replace("FIELD", FIELD.decode())

MAX_BATCH = 512  # entries per round trip: one Lua call stays short, whatever the concurrency

_Waiting = tuple[str, bytes, "asyncio.Future[None]"]


class GroupCommit:
    """Queues events from concurrent requests onto the stream, many per Redis round trip.

    Each request is answered only once Redis has acknowledged its own ``XADD``, as with one
    ``publish`` per request. One batch is in flight at a time: events that arrive while it is
    out go together in the next one, so an idle receiver sends each event at once and a busy
    one shares each round trip (and its system calls) among many (bench/notes.md: the
    profile). A batch is one call of a Lua script doing one ``XADD`` per entry (redis-py's
    ``register_script``: ``EVALSHA``, loaded again if Redis lost it), at most ``MAX_BATCH``
    entries, which costs the receiver less than half of what a pipeline of ``XADD``s cost: one
    command to write and one reply to read (bench/notes.md: ingest).
    Each event goes to its appointment's partition; on a cluster, where a script's keys must
    share a slot, each partition's entries are one call (the calls concurrent).
    """

    def __init__(self, redis: QueueClient, partitions: int = 1) -> None:
        self._redis = redis
        self._partitions = partitions
        # A cluster client has it too (redis-py types it on the single-server client only).
        self._append = redis.register_script(_APPEND)  # type: ignore[misc]
        self._per_stream = isinstance(redis, RedisCluster)
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, event: Event) -> None:
        """Durably queue one event (returns once Redis has it; raises what Redis raised)."""
        await self.append(stream_of(event, self._partitions), event.to_json())

    async def append(self, stream: str, raw: bytes) -> None:
        """``publish`` for an event already serialized (``raw``) and placed (``stream``)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((stream, raw, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                for (*_, done), answer in zip(batch, await self._send(batch), strict=True):
                    if done.done():
                        continue
                    if isinstance(answer, BaseException):
                        done.set_exception(answer)
                    else:
                        done.set_result(None)
        finally:
            self._flusher = None
            # Cancelled (shutdown): nobody may wait forever for an answer that is not coming.
            for *_, done in (*batch, *self._waiting):
                if not done.done():
                    done.set_exception(RedisError("the queue writer stopped"))
            self._waiting = []

    async def _send(self, batch: list[_Waiting]) -> list[BaseException | None]:
        """Each entry's outcome, in ``batch``'s order: None (Redis holds it) or an error."""
        by_stream: dict[str, list[int]] = {}
        for n, (stream, _, _) in enumerate(batch):
            by_stream.setdefault(stream, []).append(n)
        groups = ([[item] for item in by_stream.items()] if self._per_stream
                  else [list(by_stream.items())])
        answers: list[BaseException | None] = [None] * len(batch)
        calls = await asyncio.gather(*(self._call(batch, group) for group in groups))
        for group, outcomes in zip(groups, calls, strict=True):
            for n, outcome in zip((n for _, ns in group for n in ns), outcomes, strict=True):
                answers[n] = outcome
        return answers

    async def _call(self, batch: list[_Waiting], group: list[tuple[str, list[int]]]
                    ) -> list[BaseException | None]:
        """One script call for ``group``'s streams: each entry's outcome, in the group's order."""
        size = sum(len(ns) for _, ns in group)
        args = [len(ns) for _, ns in group] + [batch[n][1] for _, ns in group for n in ns]
        try:
            answer = await self._append(keys=[stream for stream, _ in group], args=args)
        except Exception as exc:  # each waiting request answers for itself
            return [exc] * size
        if not isinstance(answer, list) or len(answer) != size:
            return [ResponseError("the queue script answered unexpectedly")] * size
        return [None if outcome == 1 else ResponseError(_text(outcome)) for outcome in answer]


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _serialized(event: Event) -> bytes:
    """The event's stream entry; empty when it may hold unstorable text (orjson refuses a lone
    surrogate and writes a NUL as ``\\u0000``): ``unstorable`` then walks it to say where."""
    try:
        raw = event.to_json()
    except TypeError:  # orjson.JSONEncodeError
        return b""
    return b"" if b"\\u0000" in raw else raw


class Receiver:
    """The webhook endpoint for every configured provider.

    Events and the counters go to ``queue`` (the event stream's Redis, ``redis`` unless the
    queue has its own); fetches a hint asks for are arq jobs, on ``redis``.
    """

    def __init__(
        self,
        providers: Mapping[str, WebhookProvider],
        redis: Redis,
        *,
        queue: QueueClient | None = None,
        partitions: int = 1,
        clock_skew_seconds: float = 300,
        clock: Callable[[], float] = time.time,
        lane_bounds: Mapping[tuple[str, str], int] | None = None,
        known: Callable[[str, str], Awaitable[bool]] | None = None,
    ) -> None:
        self._providers = dict(providers)
        # Accounts whose hints can be fetched, with their lanes' bounds (None: every account,
        # the default bound); ``known(provider, id)``: whether the mirror holds the id.
        self._lane_bounds = None if lane_bounds is None else dict(lane_bounds)
        self._known = known
        self._redis = redis
        self._stats = redis if queue is None else queue
        self._partitions = partitions
        self._queue = GroupCommit(self._stats, partitions)
        self._tolerance = int(clock_skew_seconds * 1_000_000)
        self._clock = clock

    async def endpoint(self, request: Request) -> Response:
        """As a Starlette endpoint (``webhooks/app.py`` serves ``answer`` itself)."""
        answer = await self.answer(request.path_params["provider"],
                                   request.path_params.get("account"), request.headers,
                                   lambda: bounded_body(request, MAX_BODY_BYTES))
        return answer.response()

    async def answer(self, name: str, posted_to: str | None, headers: Mapping[str, str],
                     read: Callable[[], Awaitable[bytes]]) -> Answer:
        """Answer one delivery to ``/webhooks/{name}[/{posted_to}]``; ``read`` gives its body,
        or raises ``TooLarge`` past ``MAX_BODY_BYTES``, ``ClientDisconnect`` if the client left.
        """
        provider = self._providers.get(name)
        if provider is None:
            return _answer(404, {"error": "unknown provider"})
        try:
            return await self._receive(provider, posted_to, headers, read)
        except Exception as exc:  # last resort: a bug must not become a 500 with a traceback
            log.error("webhook_unexpected_error", provider=name, error_type=type(exc).__name__)
            return _unavailable("internal error")

    async def _receive(self, provider: WebhookProvider, posted_to: str | None,
                       headers: Mapping[str, str], read: Callable[[], Awaitable[bytes]],
                       ) -> Answer:
        name = provider.name
        try:
            body = await read()
        except TooLarge:
            log.info("webhook_rejected", provider=name, reason="too_large")
            return _answer(413, {"error": "body over 1 MiB"})
        except ClientDisconnect:
            log.info("webhook_client_disconnected", provider=name)
            return _answer(400, {"error": "client disconnected"})

        try:
            account = provider.verify(body, headers, posted_to)
            if posted_to is not None and account != posted_to:
                raise SignatureError("signed for another account than the one in the path")
        except SignatureError as exc:
            log.info("webhook_rejected", provider=name, reason="signature", detail=str(exc))
            return _answer(401, {"error": str(exc)})
        try:
            return await self._verified(provider, account, body)
        except Exception as exc:  # counted under the account that signed it
            log.error("webhook_unexpected_error", provider=name, error_type=type(exc).__name__)
            return _unavailable("internal error", account)

    async def _verified(self, provider: WebhookProvider, account: str, body: bytes) -> Answer:
        name = provider.name
        try:
            parsed = provider.parse(body, account)
        except EnvelopeError as exc:
            log.info("webhook_rejected", provider=name, reason="envelope", detail=str(exc))
            return _answer(400, {"error": str(exc)}, account)
        if isinstance(parsed, Reply):
            log.info("webhook_handshake", provider=name, account=account)
            return _answer(200, parsed.body, account)
        raw = b""
        if isinstance(parsed, Event):
            # Dated and serialized once: that JSON is both the quick storable check and the
            # stream entry (``received`` changes only its dates, never a text).
            parsed = received(parsed, int(self._clock() * 1_000_000), self._tolerance)
            raw = _serialized(parsed)
        # Checked on what was parsed, every field of every provider alike: queued, it would
        # fail at the store on every attempt (meetsync/storable.py).
        refused = None if raw else unstorable(parsed)
        if refused is not None:
            log.info("webhook_rejected", provider=name, reason="unstorable_text", field=refused)
            return _answer(400, {"error": f"{refused}: text with a NUL character or a"
                                          " lone surrogate cannot be stored"}, account)
        if isinstance(parsed, Event) and not raw:  # a text that only looked like a NUL
            raw = parsed.to_json()

        hinted: Outcome = "accepted"
        try:
            if isinstance(parsed, Event):
                if parsed.claimed_at is not None:
                    await self._clock_ahead(parsed)
                await self._queue.append(stream_of(parsed, self._partitions), raw)
            elif isinstance(parsed, Hint):
                hinted = await self._hint(name, parsed)
            else:
                # One field for every type: a field per name would let any sender grow the
                # hash without bound (its name goes to the log, cut to the log's bound).
                await count(self._stats, IGNORED_TYPES)
        except (RedisError, OSError) as exc:
            log.warning("webhook_queue_unavailable", provider=name, error_type=type(exc).__name__)
            return _unavailable("queue unavailable", account)

        if isinstance(parsed, Event):
            # DEBUG, not INFO: one line per accepted event cost more CPU than verifying, parsing
            # and queueing it together (bench/notes.md); rejections stay at INFO.
            log.debug("webhook_queued", provider=name, event_id=parsed.id, type=parsed.type)
            return _accepted("queued", account, id=parsed.id)
        if isinstance(parsed, Hint):
            log.debug("webhook_hint", provider=name, type=parsed.type,
                      appointment_id=parsed.appointment_id)
            return _accepted(HINT_ANSWERS[hinted], account)
        log.info("webhook_ignored", provider=name, type=parsed)
        return _accepted("ignored", account)

    async def _hint(self, name: str, hint: Hint) -> Outcome:
        """Queue the fetch a hint asks for in its account's lane, counted by outcome."""
        key = (name, hint.account)
        bound = (DEFAULT_BOUND if self._lane_bounds is None
                 else self._lane_bounds.get(key))
        outcome: Outcome
        if bound is None:  # the account has no API credentials: nothing could fetch it
            outcome = "dropped"
            await dropped(self._redis, name, hint.account)
        else:
            known = await self._holds(name, hint.appointment_id)
            outcome = await lane_request(self._redis, name, hint.account, hint.appointment_id,
                                          bound=bound, known=known, hint=True)
        await count(self._stats, STAT_FIELDS[outcome])
        return outcome

    async def _holds(self, name: str, appointment_id: str) -> bool:
        """Whether the mirror holds the id; unknown when it cannot say (a hint then waits
        behind those for known ids, as a forged one does)."""
        if self._known is None:
            return False
        try:
            return await self._known(name, appointment_id)
        except Exception as exc:
            log.warning("hint_mirror_unavailable", provider=name, error_type=type(exc).__name__)
            return False

    async def _clock_ahead(self, event: Event) -> None:
        """An event dated beyond receipt + tolerance: logged and counted, ordered at receipt."""
        assert event.claimed_at is not None and event.received_at is not None
        log.warning(
            "event_clock_ahead", provider=event.provider, event_id=event.id,
            appointment_id=event.appointment_id,
            claimed_at=from_micros(event.claimed_at).isoformat(),
            received_at=from_micros(event.received_at).isoformat(),
        )
        await count(self._stats, "clamped")
        metrics.CLAMPED.inc()
