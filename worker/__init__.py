"""Workers: the applier that drains the event stream into the mirror, and arq jobs and crons."""

from __future__ import annotations

from meetsync.worker.applier import Applier, StoreThread
from meetsync.worker.main import worker_settings

__all__ = ["Applier", "StoreThread", "worker_settings"]
