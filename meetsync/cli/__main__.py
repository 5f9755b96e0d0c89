"""``python -m meetsync.cli``: the same as the ``meetsync`` console script."""

from __future__ import annotations

import sys

from meetsync.cli import main

sys.exit(main())
