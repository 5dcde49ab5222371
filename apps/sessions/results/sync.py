"""Redis -> the database: a session's cumulative counters, per-second points, events, error
samples and sampled requests, copied by the monitor's tick. Counters are absolute values, so
a repeated or concurrent tick cannot double-count; database writes per tick depend on the
number of endpoints (and flows), never on shards or requests."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.sessions.models import (
    EndpointStats,
    ErrorSample,
    FlowStats,
    LoadTestSession,
    SessionEvent,
    TimeSeriesPoint,
)
from apps.sessions.results.records import keep_newest, prune_events, record_request_log
from apps.workers.control import (
    DRAIN_HASH_SCRIPT,
    DRAIN_LIST_SCRIPT,
    SessionKeys,
)
from apps.workers.histogram import percentiles_ms
from apps.workers.plan import FlowPlan
from apps.workers.secrets import mask_secrets, plan_secrets
from apps.workers.stats import (
    EndpointTotals,
    FlowTotals,
    parse_flow_stats,
    parse_series_hash,
    parse_stats_hash,
)
from apps.workers.vocabulary import (
    ERROR_SAMPLE,
)

logger = logging.getLogger(__name__)


TICK_QUANTILES = (0.5, 0.95, 0.99)  # the charts' latency lines


@dataclass
class TickGrowth:
    """What the session's cumulative counters gained since the monitor's previous pass:
    the stored per-endpoint rows hold the previous pass's values, so the difference needs no
    extra state and no work in the shards."""

    requests: int = 0
    failures_by_class: dict[str, int] = field(default_factory=dict)
    histogram: dict[int, int] = field(default_factory=dict)

    def add(self, entry: EndpointTotals, previous: EndpointStats | None) -> None:
        self.requests += entry.requests - (previous.requests if previous else 0)
        old_failures = previous.failures_by_class if previous else {}
        for failure_class, count in entry.failures_by_class.items():
            gained = count - old_failures.get(failure_class, 0)
            if gained > 0:
                self.failures_by_class[failure_class] = (
                    self.failures_by_class.get(failure_class, 0) + gained
                )
        old_histogram = previous.histogram if previous else {}
        for bucket, count in entry.histogram.items():
            gained = count - old_histogram.get(str(bucket), 0)
            if gained > 0:
                self.histogram[bucket] = self.histogram.get(bucket, 0) + gained

    def percentiles_ms(self) -> dict[float, float | None]:
        return percentiles_ms(self.histogram, TICK_QUANTILES)


def sync_statistics(session: LoadTestSession, client) -> TickGrowth:
    """Copy the session's cumulative counters and new per-second points into the database;
    returns what the counters gained since the previous copy."""
    keys = SessionKeys(session.pk)
    growth = TickGrowth()
    raw_stats = client.hgetall(keys.stats)
    totals = parse_stats_hash(raw_stats)
    flow_totals = parse_flow_stats(raw_stats)
    drained = client.eval(DRAIN_HASH_SCRIPT, 1, keys.series)
    points = parse_series_hash(dict(zip(drained[::2], drained[1::2], strict=True)))
    if not totals and not points and not flow_totals:
        return growth
    plan = session.read_plan()
    plan_endpoints = plan.endpoints
    with transaction.atomic():
        sync_flow_statistics(session, plan.flows, flow_totals)
        existing = {row.name: row for row in session.endpoint_stats.all()}
        for index, entry in totals.items():
            endpoint = plan_endpoints[index]
            row = existing.get(endpoint.name)
            growth.add(entry, row)
            if row is not None and (row.requests, row.not_sent) == (
                entry.requests,
                entry.not_sent,
            ):
                continue  # nothing new for this endpoint
            EndpointStats.objects.update_or_create(
                session=session,
                name=endpoint.name,
                defaults={
                    "endpoint_id": endpoint.endpoint_id,
                    "method": endpoint.method,
                    "url": endpoint.url,
                    "requests": entry.requests,
                    "failures": entry.failures,
                    "failures_by_class": entry.failures_by_class,
                    "cut_by_stop": entry.cut_by_stop,
                    "unreached": entry.unreached,
                    "not_sent": entry.not_sent,
                    "check_failures": entry.check_failures,
                    **duration_figures(entry),
                },
            )
        if totals:
            LoadTestSession.objects.filter(pk=session.pk).update(
                total_requests=sum(entry.requests for entry in totals.values()),
                total_failures=sum(entry.failures for entry in totals.values()),
                stats_updated_at=timezone.now(),
            )
        for second, point in sorted(points.items()):
            add_point(session, second, point)
    return growth


def sync_flow_statistics(
    session: LoadTestSession, flows: tuple[FlowPlan, ...], totals: dict[int, FlowTotals]
) -> None:
    """Copy each flow's cumulative counters into its ``FlowStats`` row, by the flow's name in
    the plan (a plan of a release before flows has none, and its hash no flow fields). Like
    the endpoints' rows, a row is written only when its flow ended iterations since."""
    if not totals:
        return
    existing = {row.name: row for row in session.flow_stats.all()}
    for index, entry in sorted(totals.items()):
        if index >= len(flows):
            # Counters of a flow the plan does not name: written by a shard of another plan
            # (impossible unless the hash was tampered with). Nothing to file them under.
            logger.warning("Session %s: flow counters at position %s, beyond the plan's %s "
                           "flows, ignored.", session.pk, index, len(flows))  # fmt: skip
            continue
        flow = flows[index]
        row = existing.get(flow.name)
        if row is not None and (row.iterations, row.failed_iterations) == (
            entry.iterations,
            entry.failed,
        ):
            continue  # no iteration of this flow ended since the previous copy
        FlowStats.objects.update_or_create(
            session=session,
            name=flow.name,
            defaults={
                "flow_id": flow.flow_id,
                "iterations": entry.iterations,
                "failed_iterations": entry.failed,
                **duration_figures(entry),
            },
        )


def duration_figures(entry: EndpointTotals | FlowTotals) -> dict:
    """A ``DurationFigures`` row's fields from the totals read back from Redis."""
    percentiles = entry.percentiles_ms()
    return {
        "min_ms": entry.min_us / 1000 if entry.min_us is not None else None,
        "max_ms": entry.max_us / 1000 if entry.max_us is not None else None,
        "mean_ms": entry.mean_ms(),
        "p50_ms": percentiles[0.5],
        "p90_ms": percentiles[0.9],
        "p95_ms": percentiles[0.95],
        "p99_ms": percentiles[0.99],
        "p999_ms": percentiles[0.999],
        "histogram": {str(bucket): count for bucket, count in entry.histogram.items()},
    }


def add_point(session, second: int, point) -> None:
    """Add to the second's point: its counts may arrive over several flushes and ticks."""
    timestamp = datetime.fromtimestamp(second, tz=UTC)
    latency_sum_ms = point.latency_sum_us / 1000
    increments = {
        "requests": F("requests") + point.requests,
        "failures": F("failures") + point.failures,
        "unavailable": F("unavailable") + point.unavailable,
        "suppressed": F("suppressed") + point.suppressed,
        "latency_sum_ms": F("latency_sum_ms") + latency_sum_ms,
    }
    rows = TimeSeriesPoint.objects.filter(session=session, timestamp=timestamp)
    if rows.update(**increments):
        return
    try:
        with transaction.atomic():
            TimeSeriesPoint.objects.create(
                session=session,
                timestamp=timestamp,
                requests=point.requests,
                failures=point.failures,
                unavailable=point.unavailable,
                suppressed=point.suppressed,
                latency_sum_ms=latency_sum_ms,
            )
    except IntegrityError:  # another monitor created it between our update and insert
        rows.update(**increments)


def record_tick_point(session: LoadTestSession, second: int, figures: dict) -> None:
    """The tick's percentiles, users and failures by class on the second the tick ended in
    (the second's requests may still arrive in later flushes: ``add_point`` adds them).

    Two ticks may end in one second (a stop queues one between beats): the failures add
    up and the percentiles keep the higher value. Only the monitor writes these fields, one
    tick per session at a time, so reading them back first is safe.
    """
    timestamp = datetime.fromtimestamp(second, tz=UTC)
    rows = TimeSeriesPoint.objects.filter(session=session, timestamp=timestamp)
    earlier = rows.values("p50_ms", "p95_ms", "p99_ms", "failures_by_class").first()
    if earlier is not None:
        merged = dict(earlier["failures_by_class"] or {})
        for failure_class, count in figures["failures_by_class"].items():
            merged[failure_class] = merged.get(failure_class, 0) + count
        figures = {**figures, "failures_by_class": merged}
        for name in ("p50_ms", "p95_ms", "p99_ms"):
            values = [value for value in (earlier[name], figures[name]) if value is not None]
            figures[name] = max(values) if values else None
        rows.update(**figures)
        return
    try:
        with transaction.atomic():
            TimeSeriesPoint.objects.create(session=session, timestamp=timestamp, **figures)
    except IntegrityError:  # a flush's point was created between our update and insert
        rows.update(**figures)


TICK_FIELDS = ("p50_ms", "p95_ms", "p99_ms", "users")


def fill_tick_gap(session: LoadTestSession, first_s: int, last_s: int, figures: dict, *,
                  create: bool = True) -> None:  # fmt: skip
    """Give the seconds from ``first_s`` to ``last_s`` that no tick ended in the users and
    percentiles of the tick that follows them.

    Ticks come about once a second, but not on every second: on a busy machine one is late
    and the next lands in the same second. The seconds between hold requests, and without
    this the charts' users and latency lines would break there. A second whose tick had no
    latency yet (it came before the load's first answers) is filled too. The later tick's
    figures are the true ones for them: its percentiles' window covers those seconds, and
    the users only change when a tick (or a flush) says so. At most LIVE_WINDOW_MAX_S
    seconds are filled: a monitor away longer has no figures for the time it was away.
    ``create=False`` fills only the seconds that have a point (the last flush's, after the
    last tick).
    """
    first_s = max(first_s, last_s - int(settings.LIVE_WINDOW_MAX_S))
    if last_s < first_s:
        return
    values = {name: figures[name] for name in TICK_FIELDS}
    if create:
        TimeSeriesPoint.objects.bulk_create(
            [
                TimeSeriesPoint(
                    session=session, timestamp=datetime.fromtimestamp(second, tz=UTC), **values
                )
                for second in range(first_s, last_s + 1)
            ],
            ignore_conflicts=True,  # a flush's point for the second: updated below
        )
    TimeSeriesPoint.objects.filter(
        session=session,
        timestamp__gte=datetime.fromtimestamp(first_s, tz=UTC),
        timestamp__lte=datetime.fromtimestamp(last_s, tz=UTC),
    ).filter(Q(users__isnull=True) | Q(p50_ms__isnull=True)).update(**values)


def store_events(session: LoadTestSession, client) -> None:
    """Move the engine's events, error samples and sampled requests from Redis into the
    database, keeping the newest of each (SESSION_EVENTS_KEPT, ERROR_SAMPLES_KEPT,
    REQUEST_LOG_KEPT)."""
    store_request_log(session, client)
    raw = client.eval(DRAIN_LIST_SCRIPT, 1, SessionKeys(session.pk).events)
    if not raw:
        return
    events, samples = [], []
    secrets = plan_secrets(session.read_plan())  # masked by the shard; again here, in depth
    for item in reversed(raw):  # LPUSH stored them newest first
        data = json.loads(item)
        data["message"] = mask_secrets(data["message"], secrets, cut_short=True)
        at = datetime.fromtimestamp(data["at"], tz=UTC)
        if data["kind"] == ERROR_SAMPLE:
            samples.append(
                ErrorSample(
                    session=session,
                    at=at,
                    endpoint=data.get("endpoint", ""),
                    failure_class=data.get("failure_class", ""),
                    status=data.get("status"),
                    message=data["message"],
                    hostname=data.get("hostname", ""),
                    trace_id=str(data.get("trace_id") or "")[:32],
                )
            )
        else:
            events.append(
                SessionEvent(
                    session=session,
                    at=at,
                    kind=data["kind"],
                    message=data["message"],
                    hostname=data.get("hostname", ""),
                    shard=data.get("shard"),
                )
            )
    if events:
        SessionEvent.objects.bulk_create(events)
        prune_events(session.pk)
    if samples:
        ErrorSample.objects.bulk_create(samples)
        keep_newest(ErrorSample.objects.filter(session=session), settings.ERROR_SAMPLES_KEPT)


def store_request_log(session: LoadTestSession, client) -> None:
    """The request log of a session with enable_logging: shards sample, the database keeps."""
    raw = client.eval(DRAIN_LIST_SCRIPT, 1, SessionKeys(session.pk).requests)
    if raw:  # LPUSH stored them newest first
        record_request_log(session.pk, [json.loads(item) for item in reversed(raw)])
