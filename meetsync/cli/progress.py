"""Progress for long work: a rich bar on a terminal, plain lines otherwise.

The work reports lines such as ``sweep: page 3/10, 120 seen``; the first ``N/M`` in a line
drives a bar named by the words before it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

_COUNT = re.compile(r"(\d+)/(\d+)")


@contextmanager
def reporter(stream: TextIO | None = None) -> Iterator[Callable[[str], None]]:
    stream = stream or sys.stderr
    if not stream.isatty():
        yield lambda line: print(line, file=stream, flush=True)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream)) as bars:
        tasks: dict[str, TaskID] = {}

        def report(line: str) -> None:
            found = _COUNT.search(line)
            if found is None:
                bars.console.print(line.strip())
                return
            name = line[: found.start()].strip().rstrip(":") or "progress"
            done, total = int(found.group(1)), int(found.group(2))
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done, total=total)

        yield report
