"""Operations: ``backup``, ``migrate``, ``config check``."""

from __future__ import annotations

import click

from meetsync.cli._common import mirror_path, print_json, registry, runtime
from meetsync.cli.errors import Unavailable
from meetsync.config import config_path, masked, user_path

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@_JSON
def backup(path: str, force: bool, as_json: bool) -> int:
    """Copy the live mirror to PATH (0600), consistently, while the worker keeps writing."""
    from meetsync.store.maintenance import backup as copy_mirror

    source = mirror_path(runtime().settings(find_dev=True))
    if isinstance(source, str):
        raise Unavailable("the mirror is on PostgreSQL: back it up with pg_dump (or your "
                          "provider's snapshots), not `meetsync backup`")
    target = user_path(path)
    if target.resolve() == source.resolve():
        raise click.UsageError("PATH is the live mirror itself")
    if target.exists() and not force:
        click.echo(f"meetsync: {target} exists (--force replaces it)", err=True)
        return 1
    if not target.parent.is_dir():
        raise Unavailable(f"no directory {target.parent}")
    size = copy_mirror(source, target)
    if as_json:
        print_json({"source": str(source), "path": str(target), "bytes": size})
    else:
        click.echo(f"backed up {source} to {target} ({size:,} bytes)")
    return 0


@click.command()
@click.option("--check", is_flag=True,
              help="Only say whether a migration is pending; exit 1 if one is.")
@_JSON
def migrate(check: bool, as_json: bool) -> int:
    """Apply the mirror's pending schema migrations (`serve`, `worker` and `dev` also do, at
    start-up); creates the mirror if there is none."""
    from meetsync.store.maintenance import migrate as apply
    from meetsync.store.maintenance import pending_migrations

    settings = runtime().settings(find_dev=True)
    if check:
        pending = pending_migrations(mirror_path(settings))
        if as_json:
            print_json({"path": _shown(settings.db_path), "pending": pending})
        else:
            click.echo(f"pending: {', '.join(pending)}" if pending else "up to date")
        return 1 if pending else 0
    applied = apply(settings.db_path)
    if as_json:
        print_json({"path": _shown(settings.db_path), "applied": applied})
    else:
        click.echo(f"applied: {', '.join(applied)}" if applied else "up to date")
    return 0


@click.group()
def config() -> None:
    """The effective configuration."""


@config.command()
@_JSON
def check(as_json: bool) -> int:
    """Validate the settings (environment and MEETSYNC_CONFIG) and print them, secrets masked.

    Exit 3, listing every problem, when they are invalid.
    """
    rt = runtime()
    settings = rt.settings(find_dev=True)
    shown = {"config_file": str(config_path(rt.env) or "") or None,
             **masked(settings, registry())}
    if as_json:
        print_json(shown)
        return 0
    providers = shown.pop("providers")
    for name, value in shown.items():
        click.echo(f"{name} = {_text(value)}")
    for provider, accounts in providers.items():  # type: ignore[attr-defined]
        for account, values in accounts.items():
            click.echo(f"[providers.{provider}.accounts.{account}]")
            for name, value in values.items():
                click.echo(f"  {name} = {_text(value)}")
    return 0


def _shown(db: str) -> str:
    """``MEETSYNC_DB`` as output may show it: a PostgreSQL URL's password masked."""
    from meetsync.store.postgres import shown

    return shown(db)


def _text(value: object) -> str:
    return "(unset)" if value is None else str(value)
