"""Helpers that drive sessions through the API, as a user would, for the integration tests."""

import itertools

from apps.sessions.models import Endpoint, LoadTestSession, Target

from .waiting import wait_until

_target_numbers = itertools.count(1)
TERMINAL = {"completed", "stopped", "failed"}
# A short think time: enough requests for exact-count checks within a few seconds.
BRISK = {"request_interval_min": 0.05, "request_interval_max": 0.1}


def make_target(api, server, endpoints=(("ping", "/ping", 1.0),)) -> int:
    """A target at ``server`` with endpoints given as (name, path, weight).

    Made directly in the database: the catalog is an administrator's business, and these
    helpers serve tests of running sessions (the catalog API has tests of its own).
    """
    target = Target.objects.create(name=f"counting-{next(_target_numbers)}",
                                   base_url=server.base_url)  # fmt: skip
    for name, path, weight in endpoints:
        Endpoint.objects.create(target=target, name=name, url=path, weight=weight)
    return target.pk


def create_session(api, target_id: int, **config) -> int:
    body = {"session_name": "test", "target": target_id, **config}
    response = api.post("/api/sessions/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def start_load(api, server, endpoints=(("ping", "/ping", 1.0),), **config) -> int:
    """Create a target, a session with ``config`` and start it; returns the session id."""
    session_id = create_session(api, make_target(api, server, endpoints), **config)
    started = api.post(f"/api/sessions/{session_id}/start/")
    assert started.status_code == 202, started.json()
    return session_id


def wait_for_status(session_id: int, statuses=TERMINAL, timeout_s: float = 30):
    def reached():
        session = LoadTestSession.objects.get(pk=session_id)
        return session if session.status in statuses else None

    return wait_until(reached, timeout_s)


def finished_session(
    target,
    name: str = "run",
    *,
    status: str = "completed",
    duration_s: float = 10.0,
    endpoints=None,
    points=(),
) -> LoadTestSession:
    """A finished session with hand-made results, for what reads results only (comparison,
    pages): ``endpoints`` maps a name to (latencies in ms, failures by class), ``points``
    are (second since the start, requests, p95 ms) time-series points."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.sessions.models import EndpointStats, TimeSeriesPoint
    from apps.workers.histogram import bucket_index, percentiles_ms

    end = timezone.now()
    start = end - timedelta(seconds=duration_s)
    endpoints = endpoints if endpoints is not None else {"ping": ([5.0] * 100, {})}
    total = sum(len(latencies) for latencies, _ in endpoints.values())
    failed = sum(sum(by_class.values()) for _, by_class in endpoints.values())
    session = LoadTestSession.objects.create(
        session_name=name, target=target, status=status, start_time=start, load_started_at=start,
        end_time=end, total_requests=total, total_failures=failed,
    )  # fmt: skip
    for endpoint, (latencies, by_class) in endpoints.items():
        counts: dict[int, int] = {}
        for ms in latencies:
            counts[bucket_index(int(ms * 1000))] = counts.get(bucket_index(int(ms * 1000)), 0) + 1
        low, high = int(min(latencies) * 1000), int(max(latencies) * 1000)
        found = percentiles_ms(counts, (0.5, 0.9, 0.95, 0.99), min_us=low, max_us=high)
        EndpointStats.objects.create(
            session=session, name=endpoint, method="GET", url=f"{target.base_url}/{endpoint}",
            requests=len(latencies), failures=sum(by_class.values()), failures_by_class=by_class,
            min_ms=min(latencies), max_ms=max(latencies),
            mean_ms=sum(latencies) / len(latencies), p50_ms=found[0.5], p90_ms=found[0.9],
            p95_ms=found[0.95], p99_ms=found[0.99],
            histogram={str(index): count for index, count in counts.items()},
        )  # fmt: skip
    for second, requests, p95_ms in points:
        TimeSeriesPoint.objects.create(
            session=session, timestamp=start + timedelta(seconds=second), requests=requests,
            p50_ms=p95_ms, p95_ms=p95_ms, p99_ms=p95_ms,
        )  # fmt: skip
    return session
