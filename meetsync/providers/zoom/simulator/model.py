"""Zoom's truth: accounts, users, meetings, a simulated clock, one webhook delivery per change.

Every public mutation changes the truth, moves the simulated wall time (``sim.now``) on by a few
milliseconds to a few seconds and returns the ``ZoomDelivery`` Zoom would POST for it:

- ``meeting.created`` / ``meeting.deleted``: ``object.id`` a number; payload with ``operator``,
  ``operator_id`` and ``operation`` (``single``);
- ``meeting.updated``: a partial: ``object`` holds ``id`` and only the changed fields,
  ``old_object`` the same keys with the old values, ``payload.time_stamp`` (ms) the change;
- ``meeting.started`` / ``meeting.ended``: ``object.id`` a *string*, no operator (rivet types);
  ``start_time`` is when the instance actually started, ``ended`` adds ``end_time``.

The API's state (tokens, issued start URLs, counters) lives here too, keyed by the sim's
monotonic ``clock`` (seconds; ``ManualClock`` in tests), so tests can move time. The API's
wall time is ``sim.now`` plus the clock's progress since the sim was made: ``wall_now()``.
Randomness the API draws (tokens, zak) comes from its own generator, so serving requests never
changes what a seed plays.
"""

from __future__ import annotations

import copy
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

import meetsync.providers.zoom.simulator.shapes as shapes
from meetsync.providers.zoom.simulator.signing import zoom_headers
from meetsync.simulator.clock import Clock
from meetsync.simulator.faults import Faults

_NAMES = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov",
          "Donald Knuth", "Frances Allen", "John Backus")  # fmt: skip
UPDATABLE = ("start_time", "duration", "topic", "password")
# meeting.created's object (plus settings and, if recurring, recurrence and occurrences);
# meeting.deleted's is the first eight.
_CREATED_FIELDS = ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone",
                   "join_url", "password")  # fmt: skip


@dataclass(frozen=True, slots=True)
class User:
    """A user of an account: each meeting has one host. Only ``active`` users host meetings
    that matter; ``inactive`` (deactivated) and ``pending`` (invited) ones are listed only
    when asked for (``GET /users?status=``)."""

    id: str
    email: str
    account_id: str
    name: str = ""
    status: str = "active"


@dataclass(slots=True)
class Account:
    """One Zoom account with its Server-to-Server OAuth app and that app's webhook secret.

    ``users[0]`` is the owner: ``me`` for the app's (account-level) token.
    """

    account_id: str
    client_id: str
    client_secret: str
    secret_token: str
    users: list[User] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ZoomDelivery:
    """One webhook POST body, as Zoom would send it; sign it per attempt with ``headers``.

    ``event_id`` is ours (Zoom sends none): duplicates of one delivery share it.
    """

    event_id: str
    event: str
    account_id: str
    meeting_id: int | None
    event_ts: int
    body: bytes

    def envelope(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed

    def headers(self, secret_token: str, *, timestamp: int | None = None) -> dict[str, str]:
        """``x-zm-request-timestamp`` and ``x-zm-signature`` over exactly ``body``."""
        return zoom_headers(self.body, secret_token, timestamp=timestamp)


@dataclass(frozen=True, slots=True)
class StartUrl:
    """A start URL the API handed out and until when (sim clock seconds) it starts the meeting."""

    meeting_id: int
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class AccessToken:
    account_id: str
    expires_at: float


class ZoomModel:
    """A deterministic Zoom's truth under ``seed``: its meetings and change log (the API over
    it is ``api``, the workload that changes it ``workload``).

    ``start`` (kept as ``begin``) is the simulated "now" that meetings are spread around; it
    defaults to the current time, so pass it for byte-identical runs. ``clock`` (monotonic
    seconds, default ``time.monotonic``) times the API: token and start-URL expiry, rate limits.
    """

    def __init__(
        self,
        seed: int,
        *,
        start: datetime | None = None,
        clock: Clock | None = None,
        accounts: int = 1,
        users_per_account: int = 4,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.api_rng = random.Random(f"zoom-api:{seed}")
        self.begin = (start or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
        self.now = self.begin
        self.clock: Clock = clock or time.monotonic
        self._clock_origin = self.clock()
        self.accounts: list[Account] = [
            self._new_account(users_per_account) for _ in range(accounts)
        ]
        self.meetings: dict[int, dict[str, Any]] = {}
        self.deleted: set[int] = set()
        self.history: list[ZoomDelivery] = []
        # API state
        self.faults = Faults()
        self.tokens: dict[str, AccessToken] = {}
        self.start_urls: dict[str, StartUrl] = {}
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.start_url_checks: Counter[str] = Counter()
        self._events = 0

    # -- lookups -----------------------------------------------------------------------------

    @property
    def account(self) -> Account:
        """The first account (most tests have only one)."""
        return self.accounts[0]

    def account_by_id(self, account_id: str) -> Account:
        for account in self.accounts:
            if account.account_id == account_id:
                return account
        raise KeyError(account_id)

    def wall_now(self) -> datetime:
        """The API's wall time: ``now`` plus the clock's progress since the sim was made."""
        return self.now + timedelta(seconds=self.clock() - self._clock_origin)

    def meeting(self, meeting_id: int) -> dict[str, Any]:
        """The meeting as Get-meeting shows it, without a start URL (deep copy)."""
        return public(self.meetings[meeting_id])

    def signer(
        self, *, timestamp: Callable[[], int] | None = None
    ) -> Callable[[ZoomDelivery], dict[str, str]]:
        """A ``signer`` for ``meetsync.simulator.deliver``: each delivery signed with its
        account's secret token at ``timestamp()`` (default: the real now, as Zoom does)."""

        def sign(delivery: ZoomDelivery) -> dict[str, str]:
            secret = self.account_by_id(delivery.account_id).secret_token
            return delivery.headers(secret, timestamp=timestamp() if timestamp else None)

        return sign

    def start_url_valid(self, url: str) -> bool:
        """Whether ``url`` (as the API issued it) would start its meeting now."""
        issued = self.start_urls.get(url)
        return (
            issued is not None
            and issued.meeting_id in self.meetings
            and self.clock() < issued.expires_at
        )

    # -- changes -----------------------------------------------------------------------------

    def create(
        self,
        *,
        account: Account | None = None,
        host: User | None = None,
        start_time: datetime | None = None,
        duration: int | None = None,
        topic: str | None = None,
        recurring: bool = False,
        occurrences: int = 4,
    ) -> ZoomDelivery:
        """``meeting.created``: a scheduled (type 2) or recurring fixed-time (type 8) meeting."""
        rng = self.rng
        account = account or self.account
        host = host or rng.choice([u for u in account.users if u.status == "active"])
        self._tick()
        meeting_id = self._new_meeting_id()
        begin = (start_time or self._random_start()).astimezone(UTC).replace(microsecond=0)
        minutes = duration or rng.choice((15, 30, 30, 45, 60, 90))
        passcode = shapes.password(rng)
        meeting: dict[str, Any] = {
            "uuid": shapes.meeting_uuid(rng),
            "id": meeting_id,
            "host_id": host.id,
            "host_email": host.email,
            "assistant_id": "",
            "topic": topic or rng.choice(shapes.TOPICS),
            "type": shapes.RECURRING_FIXED if recurring else shapes.SCHEDULED,
            "status": "waiting",
            "start_time": shapes.iso_seconds(begin),
            "duration": minutes,
            "timezone": rng.choice(shapes.TIME_ZONES),
            "agenda": "",
            "created_at": shapes.iso_seconds(self.now),
            "join_url": shapes.join_url(meeting_id, rng),
            "password": passcode,
            "h323_password": "".join(rng.choice("0123456789") for _ in range(6)),
            "pre_schedule": False,
            "settings": shapes.settings(rng),
            "_account_id": account.account_id,
            "_ended": False,
            "_instances": 0,
        }
        if recurring:
            meeting["recurrence"] = {
                "type": 2,
                "repeat_interval": 1,
                "weekly_days": str(begin.isoweekday() % 7 + 1),
                "end_times": occurrences,
            }
            meeting["occurrences"] = [
                {
                    "occurrence_id": str(shapes.epoch_ms(begin + timedelta(weeks=week))),
                    "start_time": shapes.iso_seconds(begin + timedelta(weeks=week)),
                    "duration": minutes,
                    "status": "available",
                }
                for week in range(occurrences)
            ]
        self.meetings[meeting_id] = meeting
        created = {k: meeting[k] for k in _CREATED_FIELDS}
        created["settings"] = copy.deepcopy(meeting["settings"])
        for key in ("recurrence", "occurrences"):
            if key in meeting:
                created[key] = copy.deepcopy(meeting[key])
        return self._emit("meeting.created", meeting, created, operator=host)

    def update(
        self,
        meeting_id: int,
        *,
        start_time: datetime | None = None,
        duration: int | None = None,
        topic: str | None = None,
        password: str | None = None,
    ) -> ZoomDelivery:
        """``meeting.updated``: the given fields change (none given: a random one or two)."""
        rng = self.rng
        meeting = self.meetings[meeting_id]
        wanted: dict[str, Any] = {}
        if start_time is not None:
            wanted["start_time"] = shapes.iso_seconds(start_time)
        if duration is not None:
            wanted["duration"] = duration
        if topic is not None:
            wanted["topic"] = topic
        if password is not None:
            wanted["password"] = password
        if not wanted:
            for name in rng.sample(UPDATABLE, rng.choice((1, 1, 2))):
                wanted[name] = self._random_value(meeting, name)
        self._tick()
        new: dict[str, Any] = {"id": meeting_id}
        old: dict[str, Any] = {"id": meeting_id}
        for name, value in wanted.items():
            if meeting[name] == value:
                continue
            old[name], new[name] = meeting[name], value
            meeting[name] = value
        if "password" in new:
            # The join URL embeds the (encrypted) passcode: it changes with it.
            old["join_url"] = meeting["join_url"]
            meeting["join_url"] = new["join_url"] = shapes.join_url(meeting_id, rng)
        if "start_time" in new and "occurrences" in meeting:
            self._shift_occurrences(meeting)
        operator = self._operator(meeting)
        stamp = shapes.epoch_ms(self.now)
        extra = {"old_object": old, "time_stamp": stamp}
        return self._emit("meeting.updated", meeting, new, operator=operator, extra=extra)

    def start(self, meeting_id: int) -> ZoomDelivery:
        """``meeting.started``: a new instance (a recurring meeting's next one gets a new uuid)."""
        meeting = self.meetings[meeting_id]
        self._tick()
        if meeting["_instances"]:
            meeting["uuid"] = shapes.meeting_uuid(self.rng)
        meeting["_instances"] += 1
        meeting["status"] = "started"
        meeting["_ended"] = False
        meeting["_started_at"] = shapes.iso_seconds(self.now)
        return self._emit("meeting.started", meeting, self._instance(meeting))

    def end(self, meeting_id: int) -> ZoomDelivery:
        """``meeting.ended``: the instance is over; the meeting is back to ``waiting``."""
        meeting = self.meetings[meeting_id]
        if meeting["status"] != "started":
            raise ValueError(f"meeting {meeting_id} is not started")
        self._tick()
        meeting["status"] = "waiting"
        meeting["_ended"] = True
        instance = self._instance(meeting)
        instance["end_time"] = shapes.iso_seconds(self.now)
        return self._emit("meeting.ended", meeting, instance)

    def delete(self, meeting_id: int) -> ZoomDelivery:
        """``meeting.deleted``: gone (Get meeting → 404 code 3001)."""
        meeting = self.meetings.pop(meeting_id)
        self.deleted.add(meeting_id)
        self._tick()
        gone = {k: meeting[k] for k in _CREATED_FIELDS[:8]}
        return self._emit("meeting.deleted", meeting, gone, operator=self._operator(meeting))

    def url_validation(
        self, account: Account | None = None, *, plain_token: str | None = None
    ) -> ZoomDelivery:
        """An ``endpoint.url_validation`` challenge (not part of ``history``); the right answer is
        ``expected_validation_reply(account.secret_token, plain_token)``."""
        account = account or self.account
        plain = plain_token or shapes.token(self.api_rng, 22)
        stamp = shapes.epoch_ms(self.wall_now())
        body = {
            "payload": {"plainToken": plain},
            "event_ts": stamp,
            "event": "endpoint.url_validation",
        }
        self._events += 1
        event_id = f"zmevt_{self._events:08d}"
        return ZoomDelivery(
            event_id, "endpoint.url_validation", account.account_id, None, stamp, orjson.dumps(body)
        )

    # -- internals ---------------------------------------------------------------------------

    def _emit(
        self,
        event: str,
        meeting: dict[str, Any],
        obj: dict[str, Any],
        *,
        operator: User | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ZoomDelivery:
        account_id = meeting["_account_id"]
        payload: dict[str, Any] = {"account_id": account_id}
        if operator is not None:
            payload["operator"] = operator.email
            payload["operator_id"] = operator.id
            payload["operation"] = "single"
        payload["object"] = obj
        payload.update(extra or {})
        # Sent a little after the change it reports.
        event_ts = shapes.epoch_ms(self.now) + self.rng.randint(1, 80)
        body = orjson.dumps({"event": event, "payload": payload, "event_ts": event_ts})
        self._events += 1
        event_id = f"zmevt_{self._events:08d}"
        delivery = ZoomDelivery(event_id, event, account_id, meeting["id"], event_ts, body)
        self.history.append(delivery)
        return delivery

    def _instance(self, meeting: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(meeting["id"]),
            "uuid": meeting["uuid"],
            "host_id": meeting["host_id"],
            "topic": meeting["topic"],
            "type": meeting["type"],
            "start_time": meeting["_started_at"],
            "timezone": meeting["timezone"],
            "duration": meeting["duration"],
        }

    def _operator(self, meeting: dict[str, Any]) -> User:
        """Usually the host; sometimes the account owner acting for them."""
        account = self.account_by_id(meeting["_account_id"])
        if self.rng.random() < 0.1:
            return account.users[0]
        return next(u for u in account.users if u.id == meeting["host_id"])

    def _random_value(self, meeting: dict[str, Any], name: str) -> Any:
        rng = self.rng
        if name == "start_time":
            begin = shapes.parse_iso(meeting["start_time"])
            return shapes.iso_seconds(begin + timedelta(minutes=rng.choice((-60, 30, 60, 1440))))
        if name == "duration":
            return rng.choice((15, 30, 45, 60, 90, 120))
        if name == "topic":
            return f"{rng.choice(shapes.TOPICS)} ({shapes.token(rng, 4)})"
        return shapes.password(rng)

    def _shift_occurrences(self, meeting: dict[str, Any]) -> None:
        begin = shapes.parse_iso(meeting["start_time"])
        for week, occurrence in enumerate(meeting["occurrences"]):
            moment = begin + timedelta(weeks=week)
            occurrence["occurrence_id"] = str(shapes.epoch_ms(moment))
            occurrence["start_time"] = shapes.iso_seconds(moment)

    def _random_start(self) -> datetime:
        """Mostly upcoming within days; some earlier today, a few days old."""
        rng, now = self.rng, self.now
        roll = rng.random()
        if roll < 0.80:
            slot = now + timedelta(minutes=rng.randint(1, 5 * 24 * 4) * 15)
            return slot.replace(minute=slot.minute // 15 * 15, second=0, microsecond=0)
        if roll < 0.93:
            return now - timedelta(minutes=rng.randint(90, 23 * 60))
        return now - timedelta(days=rng.randint(2, 10), minutes=rng.randint(0, 600))

    def _tick(self) -> None:
        self.now += timedelta(microseconds=self.rng.randint(3_000, 2_500_000))

    def _new_meeting_id(self) -> int:
        while True:
            candidate = self.rng.randrange(80_000_000_000, 99_999_999_999)
            if candidate not in self.meetings and candidate not in self.deleted:
                return candidate

    def _new_account(self, users: int) -> Account:
        rng = self.rng
        account = Account(
            account_id=shapes.token(rng),
            client_id=shapes.token(rng),
            client_secret=shapes.token(rng, 32),
            secret_token=shapes.token(rng),
        )
        names = rng.sample(_NAMES, min(users, len(_NAMES)))
        names += [f"Host {n}" for n in range(len(_NAMES) + 1, users + 1)]  # beyond the eight
        for name in names:
            self._new_user(account, name)
        return account

    def _new_user(self, account: Account, name: str, status: str = "active") -> User:
        email = f"{name.lower().replace(' ', '.')}@{account.account_id[:6].lower()}.example.com"
        user = User(shapes.token(self.rng), email, account.account_id, name, status)
        account.users.append(user)
        return user

    def add_user(
        self, account: Account | None = None, *, name: str | None = None, status: str = "active"
    ) -> User:
        """A new user of ``account`` (no webhook: Zoom's ``user.*`` events are not ours)."""
        account = account or self.account
        return self._new_user(account, name or f"Host {len(account.users) + 1}", status)


def public(meeting: dict[str, Any]) -> dict[str, Any]:
    """The meeting as the API shows it (a deep copy, without our private keys)."""
    return {k: copy.deepcopy(v) for k, v in meeting.items() if not k.startswith("_")}

