"""A refetched snapshot the mirror rejects on its own is not reported as applied: it takes the
applier's path (retried, then dead-lettered and counted), as a webhook's event would. A real
arq worker, real Redis, the SavvyCal simulator over real HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import redis.asyncio as aioredis
from structlog.testing import capture_logs

from meetsync.dev.redis_server import RedisServer
from meetsync.queue import request_refetch
from meetsync.store import open_store
from meetsync.store.postgres import is_postgres
from tests.sql import execute, query
from tests.worker.test_hint_flood import flood_stack, running_worker, until


def reject_appointment(db: Path | str, appointment_id: str) -> None:
    """A trigger making the mirror refuse to store this one appointment (its own failure: the
    rest of the mirror takes writes as usual)."""
    if is_postgres(str(db)):
        execute(db, "CREATE FUNCTION test_reject() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION USING ERRCODE = 'check_violation', "
                    "MESSAGE = 'rejected by the test'; END $$")
        execute(db, "CREATE TRIGGER test_reject BEFORE INSERT ON appointments FOR EACH ROW "
                    f"WHEN (NEW.id = '{appointment_id}') EXECUTE FUNCTION test_reject()")
        return
    execute(db, "CREATE TRIGGER test_reject BEFORE INSERT ON appointments "
                f"WHEN NEW.id = '{appointment_id}' "
                "BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END")


async def test_a_refetched_snapshot_that_fails_on_its_own_is_dead_lettered_not_applied(
    redis_server: RedisServer, redis: aioredis.Redis, db_path: Path | str,
) -> None:
    async with flood_stack(redis_server, redis, db_path) as stack:
        booked = stack.savvycal.book(start_at=stack.savvycal.start - timedelta(days=3))
        poison = booked.appointment_id  # ended days ago: only a refetch asks for it
        open_store(stack.settings.db_path).close()
        reject_appointment(stack.settings.db_path, poison)
        with capture_logs() as logs:
            async with running_worker(stack):
                await request_refetch(redis, "savvycal", "default", poison)

                async def dead_lettered() -> bool:
                    return bool(query(stack.settings.db_path,
                                      "SELECT event_id FROM dead_letters WHERE appointment_id = ?",
                                      (poison,)))

                assert await until(dead_lettered, 30) is not None
        letters = query(stack.settings.db_path,
                        "SELECT event_id, type, reason FROM dead_letters WHERE appointment_id = ?",
                        (poison,))
        assert len(letters) == 1
        event_id, type_, reason = letters[0]
        assert event_id.startswith("refetch:") and type_ == "refetch"
        assert "rejected by the test" in reason
        assert query(stack.settings.db_path, "SELECT id FROM appointments WHERE id = ?",
                     (poison,)) == []
        stats = await stack.stats()
        assert stats["dead_letters"] == 1 and stats["snapshots_failed"] >= 1
        failed = [e for e in logs if e["event"] == "snapshot_failed"]  # logged as failed
        assert failed and failed[0]["event_id"] == event_id


async def test_a_reconcile_repair_that_fails_on_its_own_is_dead_lettered(
    redis_server: RedisServer, redis: aioredis.Redis, db_path: Path | str,
) -> None:
    """The reconcile cron's repairs take the same path: the sweep finds the appointment, the
    mirror refuses it, the applier retries then dead-letters it."""
    async with flood_stack(redis_server, redis, db_path) as stack:
        booked = stack.savvycal.book(start_at=stack.savvycal.start + timedelta(days=1))
        poison = booked.appointment_id  # upcoming: the sweep lists it
        open_store(stack.settings.db_path).close()
        reject_appointment(stack.settings.db_path, poison)
        async with running_worker(stack):
            async def dead_lettered() -> bool:
                return bool(query(stack.settings.db_path,
                                  "SELECT event_id FROM dead_letters WHERE appointment_id = ?",
                                  (poison,)))

            assert await until(dead_lettered, 40) is not None
        letters = query(stack.settings.db_path,
                        "SELECT event_id, reason FROM dead_letters WHERE appointment_id = ?",
                        (poison,))
        # one per sweep that found it (a sweep every 5 s here)
        assert letters and all(event_id.startswith("reconcile:")
                               and "rejected by the test" in reason
                               for event_id, reason in letters)
