"""The status page's HTML: server-rendered, escaped, no script, readable on a phone.

Each figure a test or a scraper may want carries ``data-figure`` (and its card
``data-account="provider/account"``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

import orjson

from meetsync.queue import IGNORED_TYPES, folded

if TYPE_CHECKING:
    from meetsync.webhooks.operator import Overview

STYLE = """
body{font:15px/1.4 system-ui,-apple-system,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8em 1em}
header h1{font-size:1.15em;margin:0}header p{margin:.2em 0 0;opacity:.75;font-size:.85em}
main{max-width:60em;margin:0 auto;padding:.6em}
section{background:#fff;border-radius:8px;padding:.7em 1em;margin:.6em 0;
  box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:1.05em;margin:.2em 0 .5em}h3{font-size:.95em;margin:.8em 0 .3em;color:#4a5163}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(7.5em,1fr));gap:.5em}
.tile{background:#f4f5f7;border-radius:6px;padding:.4em .6em}
.tile b{display:block;font-size:1.35em}.tile span{font-size:.8em;color:#4a5163}
.warn{background:#fff3d6}.bad{background:#fde2e1}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.85em}
th,td{text-align:left;padding:.3em .4em;border-bottom:1px solid #e3e5ea;white-space:nowrap}
.success{color:#17743b}.partial{color:#9a6700}.failed,.running{color:#b42318}
form{display:flex;flex-wrap:wrap;gap:.5em}input{font-size:1em;padding:.5em;flex:1 1 12em}
button{font-size:1em;padding:.5em 1em}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def login_page(*, failed: bool = False) -> str:
    note = "<p class=\"failed\">That token is not the read token.</p>" if failed else ""
    return _page("meetsync status: sign in", (
        "<header><h1>meetsync status</h1></header><main><section>"
        "<h2>Sign in</h2><p>The read token (<code>MEETSYNC_READ_TOKEN</code>), once: a cookie "
        f"keeps you signed in for 12 hours.</p>{note}"
        "<form method=\"post\" action=\"/status/login\">"
        "<input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\""
        " placeholder=\"read token\" required>"
        "<button type=\"submit\" id=\"sign-in\">Sign in</button></form></section></main>"
    ))


def _tile(label: str, value: object, figure: str, tone: str = "") -> str:
    shown = "—" if value is None else value
    return (f"<div class=\"tile {tone}\"><b data-figure=\"{escape(figure)}\">"
            f"{escape(str(shown))}</b><span>{escape(label)}</span></div>")


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<div class=\"scroll\"><table><tr>{head}</tr>{body}</table></div>"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(iso: object) -> str:
    """``2025-03-01T15:00:12.345Z`` as ``2025-03-01 15:00`` (UTC), short enough for a phone."""
    text = str(iso)
    return f"{text[:16].replace('T', ' ')}Z" if len(text) >= 16 and text[10] == "T" else text


def _drift(raw: str | None) -> str:
    try:
        fields: Mapping[str, int] = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return "?"
    return ", ".join(f"{name} {n}" for name, n in sorted(fields.items())) or "none"


def _run_row(run: Mapping[str, Any], owner: str | None = None) -> list[str]:
    outcome = escape(str(run["outcome"]))
    row = [escape(str(run["id"]))]
    if owner is not None:
        row.append(escape(owner))
    return [*row, escape(_when(run["finished_at"] or run["started_at"])),
            f"<span class=\"{outcome}\" data-figure=\"run_outcome\">{outcome}</span>",
            escape(_drift(run["drift"])), escape(str(run["repaired"])),
            escape(str(run["api_calls"]))]


def _pipeline(overview: Overview) -> str:
    queue = overview.queue
    if queue is None:
        return "<section><h2>Queue</h2><p class=\"failed\">Redis did not answer.</p></section>"
    age = queue["oldest_age_seconds"]
    tone = "bad" if age > 300 else "warn" if age > 60 else ""
    c = folded(overview.counters)
    tiles = [
        _tile("events queued", queue["depth"], "queue_depth", "warn" if queue["depth"] else ""),
        _tile("oldest queued", _age(age), "queue_oldest_age", tone),
        _tile("read, not acknowledged", queue["pending"], "queue_pending"),
        _tile("jobs waiting", queue["jobs"], "jobs_queued"),
        _tile("applied", c.get("applied", 0), "applied"),
        _tile("duplicates", c.get("duplicates", 0), "duplicates"),
        _tile("stale", c.get("stale", 0), "stale"),
        _tile("hints", sum(c.get(f, 0) for f in ("hints", "hints_folded", "hints_collapsed",
                                                 "hints_dropped")), "hints"),
        _tile("ignored types", c.get(IGNORED_TYPES, 0), "ignored"),
        _tile("clock ahead", c.get("clamped", 0), "clamped"),
        _tile("dead-lettered", c.get("dead_letters", 0), "dead_lettered",
              "bad" if c.get("dead_letters") else ""),
    ]
    return (f"<section><h2>Queue and pipeline</h2><div class=\"tiles\">{''.join(tiles)}</div>"
            "<p><small>Counters since Redis was last emptied (<code>meetsync stats</code>)."
            "</small></p></section>")


def _account(overview: Overview, key: tuple[str, str]) -> str:
    provider, account = key
    mirror = overview.mirror or {}
    delivered = overview.deliveries.get(key, {})
    letters = mirror.get("dead_letters", {}).get(key, 0)
    creds = mirror.get("credentials", {}).get(key, {})
    refreshable = provider in overview.refreshable
    pending = creds.get("expired", 0) + creds.get("missing", 0) if refreshable else None
    unread = overview.mirror is None  # "—", not a 0 the mirror never said
    tiles = [
        _tile("appointments", None if unread else mirror.get("appointments", {}).get(key, 0),
              "appointments", "bad" if unread else ""),
        _tile("deliveries queued", delivered.get("queued", 0), "deliveries_queued"),
        _tile("hints", delivered.get("hint", 0), "deliveries_hint"),
        _tile("refused", sum(n for o, n in delivered.items()
                             if o.startswith("rejected") or o == "too_large"),
              "deliveries_refused"),
        _tile("refetches queued", overview.refetches.get(key, 0), "refetches_queued"),
        *_lane_tiles(overview, key),
        _tile("dead letters to replay", letters, "dead_letters", "bad" if letters else ""),
        _tile("meetings ahead", creds.get("meetings", 0), "meetings_ahead"),
        _tile("host link live", creds.get("live", 0), "host_url_live"),
        _tile("expired, withheld", creds.get("expired", 0), "host_url_expired",
              "warn" if creds.get("expired") else ""),
        _tile("refresh pending", "n/a" if pending is None else pending, "refresh_pending",
              "warn" if pending else ""),
    ]
    ids = overview.run_ids.get(key, [])
    runs = [mirror["runs"][i] for i in ids if i in mirror.get("runs", {})]
    table = (_table(["run", "finished", "outcome", "drift", "repaired", "API calls"],
                    (_run_row(run) for run in runs))
             if runs else "<p>No reconcile run by a worker yet.</p>")
    return (f"<section data-account=\"{escape(provider)}/{escape(account)}\">"
            f"<h2>{escape(provider)} · {escape(account)}</h2>{_reconciler(overview, key)}"
            f"<div class=\"tiles\">{''.join(tiles)}</div>"
            f"<h3>Last reconcile runs</h3>{table}</section>")


def _reconciler(overview: Overview, key: tuple[str, str]) -> str:
    missing = overview.reconciler_off.get(key)
    if missing is None:
        return ""
    return (f"<p class=\"failed\" data-figure=\"reconciler_off\">Reconciler off: no API "
            f"credentials (set {escape(missing)}); only webhooks update this account.</p>")


def _mirror_problem(overview: Overview) -> str:
    problem = overview.mirror_problem
    if problem == "absent" or problem is None:
        text = "The mirror could not be read (no worker has created it yet?)."
    else:
        text = (f"The mirror is unreachable ({problem}): its figures below are missing, "
                "not zero.")
    return (f"<section><p class=\"failed\" data-figure=\"mirror_state\">{escape(text)}</p>"
            "</section>")


def _refusals(overview: Overview) -> str:
    """Signature refusals by provider and account: a wrong secret shows here first."""
    rows = sorted(overview.signature_refusals.items())
    if not rows:
        return ""
    return "<section><h2>Refused signatures</h2>" + _table(
        ["provider", "account", "refused"],
        ([escape(provider), escape(account),
          f"<span data-figure=\"signature_refusals\">{n}</span>"]
         for (provider, account), n in rows),
    ) + ("<p><small>Deliveries whose signature no configured secret verified, since this "
         "process started: check the provider's secret against the account's.</small></p>"
         "</section>")


def _subscribers(overview: Overview) -> str:
    """Each configured subscriber's deliveries (docs/mirror.md, "Subscribers")."""
    from meetsync.metrics import lag_seconds

    rows = []
    for name, url, cursor in overview.subscribers:
        if cursor is None:
            rows.append([escape(name), escape(url), "—", "—", "—", "—", "—",
                         "<span data-figure=\"subscriber_state\">not started</span>"])
            continue
        if cursor["disabled_at"] is not None:
            reason = escape(str(cursor["disabled_reason"]))
            state = f"<span class=\"failed\">disabled ({reason})</span>"
        elif cursor["attempts"]:
            state = (f"<span class=\"partial\">retrying ({cursor['attempts']}:"
                     f" {escape(str(cursor['last_error']))})</span>")
        else:
            state = "<span class=\"success\">delivering</span>"
        rows.append([
            escape(name), escape(url),
            f"<span data-figure=\"subscriber_sent\">{cursor['sent']}</span>",
            f"<span data-figure=\"subscriber_failed\">{cursor['failed']}</span>",
            f"<span data-figure=\"subscriber_dead\">{cursor['dead']}</span>",
            f"<span data-figure=\"subscriber_lag_seq\">{cursor['lag_seq']}</span>",
            f"<span data-figure=\"subscriber_lag_seconds\">"
            f"{escape(_age(lag_seconds(cursor['oldest_changed_at'])))}</span>",
            state.replace("<span ", "<span data-figure=\"subscriber_state\" ", 1),
        ])
    return ("<section data-section=\"subscribers\"><h2>Subscribers</h2>" + _table(
        ["subscriber", "url", "sent", "failed attempts", "dead letters", "lag (changes)",
         "lag (age)", "state"], rows)
        + "<p><small><code>meetsync subscribers list</code>, <code>meetsync subscribers test"
        " NAME</code></small></p></section>")


def _lane_tiles(overview: Overview, key: tuple[str, str]) -> list[str]:
    """The account's hints by outcome (every receiver's, counted in Redis) and whether its
    next sweep was brought forward (hints collapsed past its refetch lane's bound)."""
    lane = overview.lanes.get(key)
    if lane is None:
        return []
    counts = lane.counts
    return [
        _tile("hints accepted", counts.get("accepted", 0), "hints_accepted"),
        _tile("hints folded", counts.get("folded", 0), "hints_folded"),
        _tile("hints collapsed", counts.get("collapsed", 0), "hints_collapsed",
              "warn" if counts.get("collapsed") else ""),
        _tile("hints dropped", counts.get("dropped", 0), "hints_dropped",
              "warn" if counts.get("dropped") else ""),
        _tile("sweep soon", "yes" if lane.verify_soon else "no", "verify_soon",
              "warn" if lane.verify_soon else ""),
    ]


def status_page(overview: Overview) -> str:
    generated = datetime.fromtimestamp(overview.generated_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    parts = [f"<header><h1>meetsync status</h1><p>{generated} · deliveries counted by this "
             f"process since it started {_age(time.monotonic() - _STARTED)} ago</p></header>",
             "<main>", _pipeline(overview)]
    if overview.mirror is None:
        parts.append(_mirror_problem(overview))
    parts.append(_refusals(overview))
    parts += [_account(overview, key) for key in overview.accounts if key[1]]
    if overview.subscribers:
        parts.append(_subscribers(overview))
    mirror = overview.mirror or {}
    owners = {i: f"{p}/{a}" for (p, a), ids in overview.run_ids.items() for i in ids}
    recent = mirror.get("recent_runs", [])
    if recent:
        parts.append("<section><h2>Recent reconcile runs</h2>" + _table(
            ["run", "account", "finished", "outcome", "drift", "repaired", "API calls"],
            (_run_row(run, owners.get(run["id"], "— (CLI or demo)")) for run in recent),
        ) + "</section>")
    letters = mirror.get("letters", [])
    if letters:
        parts.append("<section><h2>Dead letters awaiting replay</h2>" + _table(
            ["id", "created", "type", "reason"],
            ([escape(str(d["id"])), escape(_when(d["created_at"])), escape(str(d["type"] or "")),
              escape(str(d["reason"])[:120])] for d in reversed(letters)),
        ) + "<p><small><code>meetsync dead-letters replay --all</code></small></p></section>")
    parts.append("</main>")
    return _page("meetsync status", "".join(parts))


_STARTED = time.monotonic()
