"""The service's figures in Prometheus' exposition format: what ``GET /metrics`` returns.

Counters (requests, failures by class, requests not sent) and the latency histogram come from
the database (``EndpointStats``), not from Redis. The database is the truth a finished run is
read from, so the last scrapes after a session ends show exactly its final totals; the monitor
copies Redis there every MONITOR_INTERVAL_S (about a second), fresher than any scrape interval
needs. The database's counts only grow within a session: they are Redis' cumulative totals,
and when Redis loses a session the recovery seeds Redis with the saved totals again (the
increments lost in between are lost, never subtracted), so the counters are monotonic and
``rate()`` sees no reset.

Gauges of the present (users, request rate, live workers) come from the shards' heartbeats in
Redis, as ``GET /api/workers/`` shows them; without Redis they are left out and
``loadtest_engine_up`` says 0.

A scrape reports the active sessions and those that ended within METRICS_FINISHED_WINDOW_S, at
most METRICS_MAX_SESSIONS of them (active first, then the newest), with two queries whatever
their number: label cardinality and the scrape's cost stay bounded. Label values (session and
endpoint names) are whatever users typed; prometheus_client escapes them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Case, IntegerField, Q, Value, When
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString
from redis.exceptions import RedisError

from apps.sessions.choices import ACTIVE_STATUSES, TERMINAL_STATUSES
from apps.sessions.integrations import metrics_access
from apps.sessions.models import EndpointStats, LoadTestSession
from apps.sessions.models.results import DURATION_FIELDS
from apps.sessions.results.figures import QUANTILES, scope_figures
from apps.workers.control import get_redis
from apps.workers.histogram import cumulative_counts
from apps.workers.inventory import LOAD_QUEUE, live_workers
from apps.workers.vocabulary import FailureClass

logger = logging.getLogger(__name__)

# The histogram's upper bounds (seconds): from a fast local answer to the longest timeout
# worth measuring. Fixed, so that histogram_quantile() can add them up across sessions.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
)  # fmt: skip
_LATENCY_LIMITS_US = [round(limit * 1_000_000) for limit in LATENCY_BUCKETS_S]

SESSION_LABELS = ("session_id", "session_name", "target")
ENDPOINT_LABELS = (*SESSION_LABELS, "endpoint")
# Why a planned request was not sent (EndpointStats.not_sent): always reported, 0 included.
NOT_SENT_REASONS = ("missed", "suppressed")
FAILURE_CLASSES = tuple(failure_class.value for failure_class in FailureClass)


def reported_sessions() -> list[LoadTestSession]:
    """The sessions a scrape reports: active, or ended within the window; capped."""
    since = timezone.now() - timedelta(seconds=settings.METRICS_FINISHED_WINDOW_S)
    recent = Q(status__in=ACTIVE_STATUSES) | Q(status__in=TERMINAL_STATUSES, end_time__gte=since)
    active_first = Case(
        When(status__in=ACTIVE_STATUSES, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    shown_fields = ("session_name", "status", "concurrent_users", "target_rps", "start_time",
                    "load_started_at", "end_time", "target__name")  # fmt: skip
    return list(
        LoadTestSession.objects.filter(recent)
        .select_related("target")
        .only(*shown_fields)
        .annotate(active_first=active_first)
        .order_by("-active_first", "-pk")[: settings.METRICS_MAX_SESSIONS]
    )


class SessionsCollector:
    """A custom collector (prometheus_client's pattern): everything is read at ``collect``,
    once per scrape, so a registry made per request holds no state between scrapes."""

    def collect(self) -> Iterator[Metric]:
        sessions = reported_sessions()
        endpoint_rows = list(
            EndpointStats.objects.filter(session__in=[s.pk for s in sessions]).only(
                "session_id", "name", "requests", "failures", "failures_by_class", "not_sent",
                "cut_by_stop", "unreached", "histogram", *DURATION_FIELDS,
            )
        )  # fmt: skip
        labels = {session.pk: session_labels(session) for session in sessions}
        started = {
            session.pk: (session.load_started_at or session.start_time).timestamp()
            for session in sessions
            if session.load_started_at or session.start_time
        }
        yield from endpoint_families(endpoint_rows, labels, started)
        yield from session_families(sessions, labels)
        yield from figures_families(sessions, endpoint_rows, labels)
        yield from engine_families(labels, {s.pk for s in sessions if s.is_active})


def session_labels(session: LoadTestSession) -> list[str]:
    return [str(session.pk), session.session_name, session.target.name]


def endpoint_families(
    rows, labels: dict[int, list[str]], started: dict[int, float]
) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "loadtest_requests",
        "Requests sent and answered (or failed, or cut by a stop), per session and endpoint.",
        labels=ENDPOINT_LABELS,
    )
    cut = CounterMetricFamily(
        "loadtest_requests_cut_by_stop",
        "Of loadtest_requests: those a stop cut before their answer (no failures).",
        labels=ENDPOINT_LABELS,
    )
    unreached = CounterMetricFamily(
        "loadtest_requests_unreached",
        "Of loadtest_requests: attempts that never reached the target (refused, connect "
        "timeout, DNS); loadtest_requests minus these is what the target received.",
        labels=ENDPOINT_LABELS,
    )
    failures = CounterMetricFamily(
        "loadtest_failures",
        "Failed requests by class (network, timeout, http_4xx, http_5xx, application; "
        "cancelled: cut at stop, in runs of earlier releases), per session and endpoint.",
        labels=(*ENDPOINT_LABELS, "failure_class"),
    )
    not_sent = CounterMetricFamily(
        "loadtest_not_sent",
        "Requests the session meant to send but did not: missed (open model, no free user) "
        "or suppressed (the endpoint's circuit breaker was open).",
        labels=(*ENDPOINT_LABELS, "reason"),
    )
    latency = HistogramMetricFamily(
        "loadtest_request_duration_seconds",
        "Latency of the requests that have one (all but those cut by a stop), from the stored "
        "log-linear histogram: a request is counted at the first bound its stored bucket "
        "lies wholly under (resolution 1/128 of the bound).",
        labels=ENDPOINT_LABELS,
    )
    for row in rows:
        endpoint_labels = [*labels[row.session_id], row.name]
        created = started.get(row.session_id)
        requests.add_metric(endpoint_labels, row.requests, created=created)
        cut.add_metric(endpoint_labels, row.cut_by_stop, created=created)
        unreached.add_metric(endpoint_labels, row.unreached, created=created)
        # Every class the engine knows, 0 included (a series that appears only with its first
        # failure would hide that first failure from rate()), and any other stored one.
        for failure_class in sorted({*FAILURE_CLASSES, *row.failures_by_class}):
            count = row.failures_by_class.get(failure_class, 0)
            failures.add_metric([*endpoint_labels, failure_class], count, created=created)
        for reason in NOT_SENT_REASONS:
            not_sent.add_metric(
                [*endpoint_labels, reason], row.not_sent.get(reason, 0), created=created
            )
        cumulative = cumulative_counts(row.histogram, _LATENCY_LIMITS_US)
        measured = sum(int(count) for count in row.histogram.values())
        buckets = [(floatToGoString(bound), count)
                   for bound, count in zip(LATENCY_BUCKETS_S, cumulative, strict=True)]  # fmt: skip
        buckets.append(("+Inf", measured))
        sum_s = (row.mean_ms or 0.0) * measured / 1000.0
        latency.add_metric(endpoint_labels, buckets, sum_s)
    yield from (requests, cut, unreached, failures, not_sent, latency)


def session_families(
    sessions: list[LoadTestSession], labels: dict[int, list[str]]
) -> Iterator[Metric]:
    info = InfoMetricFamily(
        "loadtest_session", "A reported session's status and pacing model.", labels=SESSION_LABELS
    )
    active = GaugeMetricFamily(
        "loadtest_session_active",
        "1 while the session may send load (starting, running, stopping), else 0.",
        labels=SESSION_LABELS,
    )
    elapsed = GaugeMetricFamily(
        "loadtest_session_elapsed_seconds",
        "Seconds of load so far (in all, once ended).",
        labels=SESSION_LABELS,
    )
    configured_users = GaugeMetricFamily(
        "loadtest_configured_users",
        "The users the session is set to run (concurrent_users).",
        labels=SESSION_LABELS,
    )
    target_rps = GaugeMetricFamily(
        "loadtest_target_rps",
        "Open-model sessions only: the request rate they hold (requests per second).",
        labels=SESSION_LABELS,
    )
    for session in sessions:
        session_labels_ = labels[session.pk]
        info.add_metric(session_labels_, {"status": session.status, "pacing": session.pacing})
        active.add_metric(session_labels_, 1 if session.is_active else 0)
        elapsed.add_metric(session_labels_, session.duration_s())
        configured_users.add_metric(session_labels_, session.concurrent_users)
        if session.target_rps:
            target_rps.add_metric(session_labels_, session.target_rps)
    yield from (info, active, elapsed, configured_users, target_rps)


def figures_families(
    sessions: list[LoadTestSession], rows: list[EndpointStats], labels: dict[int, list[str]]
) -> Iterator[Metric]:
    """Each reported session's run figures, the values its page, report, CLI and JUnit show
    (``results.figures``, rounded as they are), in base units: a dashboard that wants "the
    run's p95" reads it here rather than from histogram buckets at fixed bounds."""
    rate = GaugeMetricFamily(
        "loadtest_session_requests_per_second",
        "Requests per second over the whole run (the session page's and report's figure).",
        labels=SESSION_LABELS,
    )
    errors = GaugeMetricFamily(
        "loadtest_session_error_ratio",
        "Failures / requests over the whole run (absent before the first request).",
        labels=SESSION_LABELS,
    )
    latency = GaugeMetricFamily(
        "loadtest_session_latency_seconds",
        "The whole run's latency percentiles, all endpoints' histograms merged.",
        labels=(*SESSION_LABELS, "quantile"),
    )
    by_session: dict[int, list[EndpointStats]] = {}
    for row in rows:
        by_session.setdefault(row.session_id, []).append(row)
    for session in sessions:
        figures = scope_figures(by_session.get(session.pk, []), session.duration_s()).as_dict()
        session_labels_ = labels[session.pk]
        if figures["rps"] is not None:
            rate.add_metric(session_labels_, figures["rps"])
        if figures["error_rate"] is not None:
            errors.add_metric(session_labels_, figures["error_rate"])
        for quantile, name in QUANTILES.items():
            if figures[name] is not None:
                latency.add_metric([*session_labels_, f"{quantile:g}"], figures[name] / 1000)
    yield from (rate, errors, latency)


def engine_families(labels: dict[int, list[str]], active: set[int]) -> Iterator[Metric]:
    """Live figures from the workers' presence and the shards' heartbeats in Redis.

    An ended session's users and rate are 0, even while its shards' last heartbeats have not
    yet expired.
    """
    try:
        workers = live_workers(get_redis())
    except (RedisError, OSError) as exc:
        logger.warning("/metrics: Redis is unreachable, live figures left out: %s", exc)
        yield GaugeMetricFamily(
            "loadtest_engine_up", "1 when Redis (workers, heartbeats) answered this scrape.", 0
        )
        return
    yield GaugeMetricFamily(
        "loadtest_engine_up", "1 when Redis (workers, heartbeats) answered this scrape.", 1
    )
    load_workers = [
        worker for worker in workers if LOAD_QUEUE in worker.get("queues", ()) or worker["shards"]
    ]
    yield GaugeMetricFamily(
        "loadtest_workers",
        f"Live load workers (consuming the {LOAD_QUEUE!r} queue or running shards).",
        len(load_workers),
    )
    users_by_session: dict[int, int] = defaultdict(int)
    rate_by_session: dict[int, float] = defaultdict(float)
    for worker in load_workers:
        for shard in worker["shards"]:
            if shard["session"] not in active:
                continue
            users_by_session[shard["session"]] += shard["users"]
            rate_by_session[shard["session"]] += shard["rate"]
    users = GaugeMetricFamily(
        "loadtest_users",
        "Virtual users the session's shards run now (from their heartbeats).",
        labels=SESSION_LABELS,
    )
    rate = GaugeMetricFamily(
        "loadtest_request_rate",
        "Requests per second the session's shards sent over their last heartbeat interval.",
        labels=SESSION_LABELS,
    )
    for session_id, session_labels_ in labels.items():
        users.add_metric(session_labels_, users_by_session.get(session_id, 0))
        rate.add_metric(session_labels_, rate_by_session.get(session_id, 0.0))
    yield from (users, rate)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the exposition Prometheus asked for (text or OpenMetrics), once the
    guard (``metrics_access``) lets the scraper in."""
    refused = metrics_access.refusal(request)
    if refused is not None:
        return refused
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionsCollector())  # type: ignore[arg-type]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(registry), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
