"""Workers: the applier that drains the event stream into the mirror, and arq jobs and crons."""

from __future__ import annotations

from worker.applier import Applier, StoreThread
from worker.main import worker_settings
from worker.queue import EVENT_STREAM, publish

__all__ = ["EVENT_STREAM", "Applier", "StoreThread", "publish", "worker_settings"]
