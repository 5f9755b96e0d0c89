"""Commands that look inside: ``show``, ``changes``, ``stats``, ``dead-letters list``."""

from __future__ import annotations

import click

from meetsync.cli._common import open_mirror, print_json, redis_errors, require, runtime


@click.command()
@click.argument("kind", type=click.Choice(["meeting", "appointment", "current-meeting"]))
@click.argument("item_id", metavar="ID")
@click.option("--follow", is_flag=True, help="meeting: follow replacements to the latest.")
def show(kind: str, item_id: str, follow: bool) -> int:
    """Print a meeting, an appointment (with its meeting) or an appointment's current meeting
    from the mirror, as JSON. Exit 1 when not found."""
    store = open_mirror(runtime().settings(find_dev=True))
    try:
        if kind == "meeting":
            found = store.latest_meeting(item_id) if follow else store.meeting(item_id)
        elif kind == "appointment":
            found = store.appointment(item_id)
            if found is not None:
                found["meeting"] = store.current_meeting(item_id)
        else:
            found = store.current_meeting(item_id)
    finally:
        store.close()
    if found is None:
        click.echo(f"{kind} {item_id} not found", err=True)
        return 1
    print_json(found)
    return 0


@click.command()
@click.option("--since", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sequence number to read after.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most changes to print.")
def changes(since: int, limit: int) -> int:
    """Print the change log after a sequence number, as JSON."""
    store = open_mirror(runtime().settings(find_dev=True))
    try:
        print_json(store.changes_since(since, limit))
    finally:
        store.close()
    return 0


@click.command()
def stats() -> int:
    """Print the queue length (every partition's) and the pipeline's counters, as JSON."""
    import redis
    from redis.cluster import RedisCluster

    from meetsync.queue import STATS, cluster_url, folded, streams

    settings = runtime().settings(find_dev=True)
    require(settings, redis=True)
    url = settings.require_queue()
    timeouts = {"socket_timeout": 5, "socket_connect_timeout": 5}
    plain = cluster_url(url)
    client = (RedisCluster.from_url(plain, **timeouts) if plain
              else redis.Redis.from_url(url, **timeouts))
    with redis_errors():
        counters = {k.decode(): int(v) for k, v in client.hgetall(STATS).items()}  # type: ignore[union-attr]
        queued = sum(client.xlen(key) for key in streams(settings.queue_partitions))  # type: ignore[misc]
    client.close()
    print_json({"queued": queued, "counters": folded(counters)})
    return 0


@click.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include the replayed ones.")
def dead_letters_list(include_replayed: bool) -> int:
    """Print the dead letters awaiting replay, as JSON."""
    store = open_mirror(runtime().settings(find_dev=True))
    try:
        print_json(store.dead_letters(include_replayed=include_replayed))
    finally:
        store.close()
    return 0
