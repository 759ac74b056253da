"""The status page for clinic staff, ``GET /sessions``: the numbers of ``/sessions/stats`` as
one HTML page, rendered on the server (aiohttp-jinja2), with nothing loaded from another host.

:func:`page_context` turns a ``get_all_stats()`` document into what the template shows: the
funnel, the delivery rate, latency percentiles (when the stats carry them), failures by kind
with what to do, the tag table and an inline SVG chart of the history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from plugin.core.failures import FAILURE_ADVICE, FAILURE_KINDS
from plugin.core.model import COUNTER_KEYS

__all__ = ["REFRESH_SECONDS", "TEMPLATES_KEY", "delivery_rate", "page_context", "setup_templates"]

#: The page reloads itself this often (seconds).
REFRESH_SECONDS = 60
#: The application's own template environment (a host app may run aiohttp-jinja2 as well).
TEMPLATES_KEY = web.AppKey("wa_sessions_templates", jinja2.Environment)

_CHART_WIDTH, _CHART_HEIGHT, _CHART_TOP, _CHART_BOTTOM = 720, 220, 16, 40
#: Stacked bar segments, bottom up: (counter, CSS class, label).
_SEGMENTS = (
    ("delivered", "seg-delivered", "delivered"),
    ("failed", "seg-failed", "failed"),
    ("expired", "seg-expired", "expired"),
    ("evicted", "seg-evicted", "evicted"),
    ("pending", "seg-pending", "pending"),
)


def setup_templates(app: web.Application) -> None:
    """The status page's template environment on ``app`` (under its own key)."""
    if TEMPLATES_KEY in app:
        return
    aiohttp_jinja2.setup(
        app,
        app_key=TEMPLATES_KEY,
        loader=jinja2.PackageLoader("plugin.server", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )


def delivery_rate(counters: Mapping[str, Any]) -> float | None:
    """Delivered over sent, in percent; None when nothing was sent."""
    sent = int(counters.get("sent", 0))
    if sent <= 0:
        return None
    return 100.0 * int(counters.get("delivered", 0)) / sent


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


def _seconds(value: Any) -> str:
    if value is None:
        return "n/a"
    seconds = float(value)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _latency(summary: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    latency = summary.get("latency")
    if not isinstance(latency, Mapping):
        return None
    rows = []
    for status in ("delivered", "read"):
        entry = latency.get(status)
        if not isinstance(entry, Mapping):
            continue
        rows.append(
            {
                "status": status,
                "count": int(entry.get("count") or 0),
                **{q: _seconds(entry.get(q)) for q in ("p50", "p90", "p99")},
            }
        )
    return rows if any(row["count"] for row in rows) else None


def _failures(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    failures = summary.get("failures")
    counts = failures if isinstance(failures, Mapping) else {}
    return [
        {"kind": kind, "count": int(counts[kind]), "advice": FAILURE_ADVICE[kind]}
        for kind in FAILURE_KINDS
        if counts.get(kind)
    ]


def _tags(stats: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Tag funnels over the active sessions: the summary's ``tags`` when it has them, else the
    sessions' added up; None when the stats carry no tags at all."""
    summary = stats.get("summary", {})
    sources: Sequence[Mapping[str, Any]]
    if isinstance(summary.get("tags"), Mapping):
        sources = [summary["tags"]]
    else:
        sources = [s["tags"] for s in stats.get("sessions", []) if isinstance(s.get("tags"), dict)]
        if not sources:
            return None
    totals: dict[str, dict[str, int]] = {}
    for tags in sources:
        for tag, funnel in tags.items():
            row = totals.setdefault(str(tag), dict.fromkeys(COUNTER_KEYS, 0))
            for key in COUNTER_KEYS:
                row[key] += int(funnel.get(key, 0)) if isinstance(funnel, Mapping) else 0
    return [
        {"tag": tag, **row, "rate": _percent(delivery_rate(row))}
        for tag, row in sorted(totals.items(), key=lambda item: (-item[1]["sent"], item[0]))
    ]


def _chart(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stacked bars, one per session (history oldest first, then the active ones)."""
    if not entries:
        return {"bars": [], "width": _CHART_WIDTH, "height": _CHART_HEIGHT, "max": 0}
    plot = _CHART_HEIGHT - _CHART_TOP - _CHART_BOTTOM
    peak = max(max(int(e.get("sent", 0)) for e in entries), 1)
    slot = _CHART_WIDTH / len(entries)
    width = max(min(slot * 0.7, 60.0), 2.0)
    bars = []
    for index, entry in enumerate(entries):
        x = index * slot + (slot - width) / 2
        bottom = float(_CHART_TOP + plot)
        segments = []
        for counter, css, label in _SEGMENTS:
            value = int(entry.get(counter, 0))
            if value <= 0:
                continue
            height = plot * value / peak
            bottom -= height
            segments.append(
                {
                    "y": round(bottom, 1),
                    "height": round(height, 1),
                    "css": css,
                    "title": f"{entry['session_id']}: {value} {label}",
                }
            )
        bars.append(
            {
                "x": round(x, 1),
                "width": round(width, 1),
                "segments": segments,
                "label": str(entry["session_id"])[-5:],
                "label_x": round(x + width / 2, 1),
                "active": bool(entry.get("active")),
                "rate": _percent(delivery_rate(entry)),
            }
        )
    return {
        "bars": bars,
        "width": _CHART_WIDTH,
        "height": _CHART_HEIGHT,
        "max": peak,
        "baseline": _CHART_TOP + plot,
        "top": _CHART_TOP,
    }


def page_context(stats: Mapping[str, Any], now: float) -> dict[str, Any]:
    """What the status page template shows, from a ``/sessions/stats`` document."""
    summary = stats["summary"]
    funnel = [{"key": key, "value": int(summary.get(key, 0))} for key in COUNTER_KEYS]
    history = list(stats.get("history", []))
    sessions = [{**s, "active": True} for s in stats.get("sessions", [])]
    webhooks = stats.get("webhooks", {})
    return {
        "generated_at": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "refresh_seconds": REFRESH_SECONDS,
        "funnel": funnel,
        "summary": summary,
        "rate": _percent(delivery_rate(summary)),
        "latency": _latency(summary),
        "failures": _failures(summary),
        "advice": [{"kind": k, "advice": FAILURE_ADVICE[k]} for k in FAILURE_KINDS],
        "tags": _tags(stats),
        "chart": _chart(history + sessions),
        "sessions": [
            {
                "session_id": s["session_id"],
                "active": bool(s.get("active")),
                **{k: int(s.get(k, 0)) for k in COUNTER_KEYS},
                "rate": _percent(delivery_rate(s)),
            }
            for s in reversed(history + sessions)
        ],
        "webhooks": [{"provider": name, **counters} for name, counters in sorted(webhooks.items())],
        "receipts": summary.get("receipts", {}),
    }
