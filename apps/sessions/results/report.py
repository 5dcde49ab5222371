"""A session's report: one self-contained HTML file a person can keep, mail or attach to a
ticket, and open offline in any browser (``GET /api/sessions/<id>/report/``, the session
page's Download report, ``manage.py loadtest run --report`` and ``loadtest report``).

Everything is inside the file: the styles, uPlot (with its licence) and the data, as JSON in
a ``<script type="application/json">`` that the template's ``json_script`` escapes, so a
session named ``</script><script>...`` stays text. Endpoint headers, bodies and query strings
may hold credentials: the configuration shows header names only, and every text that could
quote a secret (URLs, bodies, error and event messages) is masked by value, as the export is.
"""

from __future__ import annotations

import platform
import tomllib
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import celery
import django
import rest_framework
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from apps.sessions.access import config_history
from apps.sessions.choices import EVENT_CHANGES, EVENT_MILESTONES
from apps.sessions.models import EndpointStats, FlowStats, LoadTestSession
from apps.sessions.results.charts import chart
from apps.sessions.results.figures import RunFigures, figures_by_scope, merged_histogram, sum_counts
from apps.sessions.results.what_ran import (
    change_rows,
    changes_while_running,
    configuration_at_start,
    users_run,
)
from apps.workers.histogram import percentile_curve
from apps.workers.plan import FeedPlan
from apps.workers.secrets import REDACTED, mask_secrets, plan_secrets

VENDOR = Path(__file__).resolve().parent.parent / "static" / "dashboard" / "vendor" / "uplot"
PYPROJECT = Path(settings.BASE_DIR) / "pyproject.toml"
ERRORS_SHOWN = 50
EVENTS_SHOWN = 100
BODY_CHARS_SHOWN = 2000
CHART_POINTS = 1000


@lru_cache(maxsize=1)
def _uplot() -> dict[str, str]:
    """uPlot's script, styles and licence, read once per process."""
    return {
        "js": (VENDOR / "uPlot.iife.min.js").read_text(encoding="utf-8"),
        "css": (VENDOR / "uPlot.min.css").read_text(encoding="utf-8"),
        "license": (VENDOR / "LICENSE").read_text(encoding="utf-8").replace("*/", "* /"),
    }


@lru_cache(maxsize=1)
def service_version() -> str:
    try:
        return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def report_filename(session: LoadTestSession) -> str:
    """``session-12-nightly-checkout.html``: ASCII only, so every browser and shell keeps it."""
    slug = slugify(session.session_name)[:60].strip("-")
    return f"session-{session.pk}{'-' + slug if slug else ''}.html"


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _endpoint_json(row: EndpointStats, figures: RunFigures, secrets: set[str]) -> dict:
    return {
        "name": row.name,
        "method": row.method,
        "url": mask_secrets(row.url, secrets),
        **figures.as_dict(),
        "failures_by_class": row.failures_by_class or {},
        "not_sent": row.not_sent or {},
    }


def _masked_change(row: dict, secrets: set[str]) -> dict:
    return {
        **row,
        "at": _time(row["at"]),
        "from": mask_secrets(row["from"], secrets),
        "to": mask_secrets(row["to"], secrets),
    }


def _flow_json(row: FlowStats) -> dict:
    return {
        "name": row.name,
        "iterations": row.iterations,
        "failed_iterations": row.failed_iterations,
        "failure_rate": row.failure_rate,
        "mean_ms": row.mean_ms,
        "p50_ms": row.p50_ms,
        "p95_ms": row.p95_ms,
        "p99_ms": row.p99_ms,
        "max_ms": row.max_ms,
    }


def _configuration(session: LoadTestSession, secrets: set[str], changes) -> dict:
    """What ran: the configuration at the start and at the end (they differ where it was
    changed while running), and the frozen plan's endpoints (as at the start), secrets
    masked (header values are never shown, whatever their name)."""
    at_start = configuration_at_start(session, changes)
    at_end = config_history.snapshot(session)
    config = [
        {
            "name": name,
            "at_start": config_history.readable(at_start.get(name)),
            "at_end": config_history.readable(at_end.get(name)),
            "changed": at_start.get(name) != at_end.get(name),
        }
        for name in session.CONFIG_FIELDS
        if name != "target"
    ]
    plan = session.read_plan()
    endpoints = [
        {
            "name": endpoint.name,
            "method": endpoint.method,
            "url": mask_secrets(endpoint.url, secrets),
            "weight": endpoint.weight,
            "timeout_s": endpoint.timeout_s,
            "headers": {name: REDACTED for name in endpoint.headers},
            "body": mask_secrets(endpoint.body[:BODY_CHARS_SHOWN], secrets, cut_short=True),
        }
        for endpoint in (plan.endpoints if plan is not None else ())
    ]
    plan_endpoints = plan.endpoints if plan is not None else ()
    flows = [
        {
            "name": flow.name,
            "weight": flow.weight,
            "steps": [
                {
                    # The statistics name a step "<flow> (right quote) 2. cart-add": "2. cart-add".
                    "endpoint": plan_endpoints[step.endpoint].name.rpartition(" \u203a ")[2],
                    "think_time_s": step.think_time_s,
                    "extract": [dict(item) for item in step.extract],
                }
                for step in flow.steps
            ],
        }
        for flow in (plan.flows if plan is not None else ())
    ]
    feed = plan.feed if plan is not None else None
    return {
        "target": {"name": session.target.name, "base_url": session.target.base_url},
        "session": config,
        "endpoints": endpoints,
        "flows": flows,
        # The feed's shape only: its values may be credentials.
        "feed": None if feed is None else _feed_shape(feed),
    }


def _feed_shape(feed: FeedPlan) -> dict:
    return {
        "name": feed.name,
        "columns": list(feed.columns),
        "rows": len(feed.rows),
        "mode": feed.mode,
    }


def _workers(session: LoadTestSession) -> list[str]:
    """The hosts that ran the load, as its events, error samples and request log name them
    (their heartbeats live in Redis only while they run)."""
    hosts: set[str] = set()
    for related in (session.events, session.error_samples, session.request_log):
        hosts.update(related.exclude(hostname="").values_list("hostname", flat=True).distinct())
    return sorted(hosts)


def report_data(session: LoadTestSession) -> dict:
    """Everything the report shows, JSON-ready."""
    secrets = plan_secrets(session.read_plan())
    rows = list(session.endpoint_stats.order_by("name"))
    figures = figures_by_scope(session)
    whole = figures[None]
    minima = [row.min_ms for row in rows if row.min_ms is not None]
    maxima = [row.max_ms for row in rows if row.max_ms is not None]
    curve = percentile_curve(
        merged_histogram(rows),
        min_us=int(min(minima) * 1000) if minima else None,
        max_us=int(max(maxima) * 1000) if maxima else None,
    )
    errors = [
        {
            "at": _time(sample.at),
            "endpoint": sample.endpoint,
            "failure_class": sample.failure_class,
            "status": sample.status,
            "message": mask_secrets(sample.message, secrets, cut_short=True),
            "hostname": sample.hostname,
        }
        for sample in session.error_samples.order_by("-at", "-pk")[:ERRORS_SHOWN]
    ]
    changes = changes_while_running(session)
    # What ran (the lifecycle and its changes) and the engine's notices, up to EVENTS_SHOWN
    # each: a breaker flapping all run long does not hide how the run ended.
    lifecycle = EVENT_MILESTONES | EVENT_CHANGES
    events = [
        {
            "at": _time(event.at),
            "kind": event.kind,
            "label": event.get_kind_display(),
            "message": mask_secrets(event.message, secrets, cut_short=True),
            "who": f"{event.actor} via {event.via}",
            "hostname": event.hostname,
        }
        for event in sorted(
            [
                *session.events.filter(kind__in=lifecycle).order_by("at", "pk")[:EVENTS_SHOWN],
                *session.events.exclude(kind__in=lifecycle).order_by("at", "pk")[:EVENTS_SHOWN],
            ],
            key=lambda event: (event.at, event.pk),
        )
    ]
    return {
        "session": {
            "id": session.pk,
            "name": session.session_name,
            "tags": session.tags or [],
            "status": session.status,
            "end_reason": session.get_end_reason_display() if session.end_reason else "",
            "end_detail": mask_secrets(session.end_detail, secrets),
            "created_at": _time(session.created_at),
            "started_at": _time(session.start_time),
            "load_started_at": _time(session.load_started_at),
            "ended_at": _time(session.end_time),
            "duration_s": round(session.duration_s(), 3),
            "users": users_run(session, changes).as_dict(),
            "pacing": session.pacing,
            "target_rps": session.target_rps,
            "total_requests": session.total_requests,
            "total_failures": session.total_failures,
            "received_by_target": whole.requests - whole.unreached,
            "not_sent": sum_counts(row.not_sent for row in rows),
        },
        "whole": whole.as_dict(),
        "thresholds": session.threshold_results or [],
        "endpoints": [_endpoint_json(row, figures[row.name], secrets) for row in rows],
        "flows": [_flow_json(row) for row in session.flow_stats.order_by("name")],
        "failures_by_class": sum_counts(row.failures_by_class or {} for row in rows),
        "errors": errors,
        "events": events,
        "chart": chart(session, {"points": str(CHART_POINTS)}),
        "distribution": [[round(q * 100, 4), ms] for q, ms in curve],
        "configuration": _configuration(session, secrets, changes),
        "changes": [_masked_change(row, secrets) for row in change_rows(changes)],
        "environment": {
            "service_version": service_version(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "celery": celery.__version__,
            "djangorestframework": rest_framework.VERSION,
            "time_zone": settings.TIME_ZONE,
            "workers": _workers(session),
            "generated_at": _time(timezone.now()),
        },
    }


def render_report(session: LoadTestSession) -> str:
    """The report as one HTML document (a str)."""
    data = report_data(session)
    return render_to_string(
        "reports/session_report.html",
        {"data": data, "session": data["session"], "uplot": _uplot()},
    )


def write_report(path: Path, session: LoadTestSession) -> None:
    path.write_text(render_report(session), encoding="utf-8")
