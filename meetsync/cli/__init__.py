"""The ``meetsync`` command: run the stack, look inside the mirror, operate it.

The entry point on top of every package: nothing below imports it. Each command group lives in
its own module; ``main`` turns every expected failure into a one-line message and an exit code
(``_common.EXIT_CODES``), never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from meetsync.cli import endpoints, ops, repair, run, views
from meetsync.cli._common import (
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    Runtime,
    uvicorn_kwargs,
)
from meetsync.cli.errors import SettingsError, StoreError, Unavailable
from meetsync.cli.subscribers import subscribers
from meetsync.config import user_path
from meetsync.dev.redis_server import RedisStartError


@click.group(
    help=f"""A correct local mirror of your scheduling provider's video meetings.

Settings come from the environment and MEETSYNC_CONFIG (a TOML file); `meetsync config
check` validates and prints them. Shell completion: eval "$(_MEETSYNC_COMPLETE=bash_source
meetsync)" (zsh_source, fish_source).

{EXIT_CODES}""",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="meetsync", prog_name="meetsync")
@click.option("--data-dir", type=click.Path(file_okay=False), default=".meetsync",
              show_default=True, envvar="MEETSYNC_DATA_DIR",
              help="`meetsync dev`'s state directory; other commands find a running dev stack "
                   "there when REDIS_URL or MEETSYNC_DB is unset.")
@click.pass_context
def cli(ctx: click.Context, data_dir: str) -> None:
    ctx.obj = Runtime(user_path(data_dir))


@cli.group("dead-letters")
def dead_letters() -> None:
    """Events the worker gave up on: list, replay."""


for command in (run.serve, run.worker, run.dev, run.demo, views.show, views.changes,
                views.stats, repair.reconcile, repair.backfill, ops.backup, ops.migrate, ops.config,
                endpoints.endpoints, subscribers):
    cli.add_command(command)
dead_letters.add_command(views.dead_letters_list)
dead_letters.add_command(repair.replay)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (see ``EXIT_CODES``)."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="meetsync",
                        standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SettingsError as exc:
        for problem in exc.problems:
            click.echo(f"meetsync: {problem}", err=True)
        return EXIT_CONFIG
    except (Unavailable, RedisStartError) as exc:
        click.echo(f"meetsync: {exc}", err=True)
        return EXIT_UNAVAILABLE
    except StoreError as exc:  # the mirror's database down, or locked past the busy timeout
        click.echo(f"meetsync: the mirror is unavailable: {exc}", err=True)
        return EXIT_UNAVAILABLE
    except (KeyboardInterrupt, click.Abort):
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0 if code is None else EXIT_FAILED


__all__ = ["cli", "main", "uvicorn_kwargs"]  # uvicorn_kwargs: the benchmarks serve alike

if __name__ == "__main__":  # pragma: no cover - `python -m meetsync.cli` runs __main__.py
    sys.exit(main())
