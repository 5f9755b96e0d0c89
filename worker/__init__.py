"""Workers: the applier that drains the event stream into the mirror, and arq jobs and crons."""

from __future__ import annotations

from meetsync.worker.applier import Applier, StoreThread
from meetsync.worker.main import worker_settings
from meetsync.worker.queue import EVENT_STREAM, publish

__all__ = ["EVENT_STREAM", "Applier", "StoreThread", "publish", "worker_settings"]
