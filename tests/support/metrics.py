"""Scraping GET /metrics through the test client, reading what it says, and sessions with
stored statistics for it to report."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.sessions.models import EndpointStats, LoadTestSession, Target

TOKEN = "metrics-test-token-0123456789"
GUARDED = {"METRICS_TOKEN": TOKEN, "METRICS_ALLOWED_ADDRESSES": ()}


def scrape(address="127.0.0.1", token=TOKEN, **headers):
    """The test client's GET /metrics from ``address``; ``token`` None sends none."""
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return Client().get("/metrics", REMOTE_ADDR=address, **headers)


def families(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(parsed, sample_name: str, **labels) -> list:
    """The samples named ``sample_name`` whose labels include ``labels``."""
    return [
        sample
        for family in parsed.values()
        for sample in family.samples
        if sample.name == sample_name
        and all(sample.labels.get(name) == value for name, value in labels.items())
    ]


def value(parsed, sample_name: str, **labels) -> float:
    (sample,) = samples(parsed, sample_name, **labels)
    return sample.value


def stored_session(name="shop", endpoint="home", status="running", ended_ago_s=None, **stats):
    """A session with one endpoint's statistics, as the monitor leaves them."""
    target, _ = Target.objects.get_or_create(name="t-metrics", base_url="http://127.0.0.1:9")
    now = timezone.now()
    session = LoadTestSession.objects.create(
        session_name=name,
        target=target,
        status=status,
        start_time=now - timedelta(seconds=60),
        load_started_at=now - timedelta(seconds=59),
        end_time=None if ended_ago_s is None else now - timedelta(seconds=ended_ago_s),
        total_requests=stats.get("requests", 0),
    )
    EndpointStats.objects.create(
        session=session,
        name=endpoint,
        method="GET",
        url="http://127.0.0.1:9/",
        requests=stats.get("requests", 0),
        failures=sum(stats.get("failures_by_class", {}).values()),
        failures_by_class=stats.get("failures_by_class", {}),
        histogram=stats.get("histogram", {}),
        mean_ms=stats.get("mean_ms"),
    )
    return session
