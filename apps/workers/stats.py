"""A shard's statistics in memory, and their wire format in Redis.

A shard records every outcome here (counters, a latency histogram, per-second totals) and
hands the accumulated *delta* to a flush about once a second. Memory is bounded by the number
of endpoints and histogram buckets, never by the number of requests.

The Redis side is two hashes per session, both only ever incremented by shards:
- ``stats`` (cumulative): ``{e}:n`` requests, ``{e}:f:{class}`` failures, ``{e}:s:{why}``
  requests not sent (``missed``, ``suppressed``), ``{e}:sum`` latency sum in µs,
  ``{e}:h:{bucket}`` histogram counts, ``{e}:min`` / ``{e}:max`` in µs, ``{e}:c:{check}``
  answers that failed a response check (by the check's name), ``{e}:cut`` requests a stop
  cut before their answer (counted in ``n``, never as failures), ``{e}:unreached`` requests
  whose bytes never left (refused, connect timeout, DNS, or cut while connecting: counted in
  ``n``, and as failures unless cut), where ``{e}`` is the
  endpoint's position in the session plan; and per flow, ``F{f}:n`` iterations ended,
  ``F{f}:f`` iterations that failed (a step failed: the rest were not sent), ``F{f}:sum``,
  ``F{f}:h:{bucket}``, ``F{f}:min`` / ``F{f}:max`` of iteration durations in µs (first send
  to last answer, think times between steps included), where ``{f}`` is the flow's position
  in the plan's ``flows``;
- ``series``: ``{epoch second}:n`` / ``:f`` / ``:u`` (unavailable) / ``:x`` (suppressed) /
  ``:sum``, drained by the monitor into points.
This module is the only place that knows those field names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from .histogram import bucket_index, percentiles_ms

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)
MISSED = "missed"  # open model: no free user at the intended time
SUPPRESSED = "suppressed"  # the endpoint's circuit breaker was open
CUT = "cut"  # the ``stats`` field of requests a stop cut before their answer
UNREACHED = "unreached"  # ... and of attempts whose bytes never reached the target


@dataclass
class StatsDelta:
    """What a shard accumulated since its last successful flush, ready for the flush script."""

    increments: dict[str, int] = field(default_factory=dict)
    maxima: dict[str, int] = field(default_factory=dict)
    minima: dict[str, int] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)
    requests: int = 0

    def merge(self, newer: StatsDelta) -> None:
        """Fold a later delta into this one (used when a flush failed and is retried)."""
        for name, value in newer.increments.items():
            self.increments[name] = self.increments.get(name, 0) + value
        for name, value in newer.series.items():
            self.series[name] = self.series.get(name, 0) + value
        for name, value in newer.maxima.items():
            self.maxima[name] = max(self.maxima.get(name, value), value)
        for name, value in newer.minima.items():
            self.minima[name] = min(self.minima.get(name, value), value)
        self.requests += newer.requests


class _EndpointCounters:
    __slots__ = (
        "buckets", "checks", "cut", "failures", "latency_sum_us", "max_us", "min_us",
        "not_sent", "requests", "unreached"
    )  # fmt: skip

    def __init__(self) -> None:
        self.requests = 0
        self.cut = 0
        self.unreached = 0
        self.failures: dict[str, int] = defaultdict(int)
        self.checks: dict[str, int] = defaultdict(int)
        self.not_sent: dict[str, int] = defaultdict(int)
        self.latency_sum_us = 0
        self.min_us: int | None = None
        self.max_us: int | None = None
        self.buckets: dict[int, int] = defaultdict(int)


class _FlowCounters:
    __slots__ = ("buckets", "duration_sum_us", "failed", "iterations", "max_us", "min_us")

    def __init__(self) -> None:
        self.iterations = 0
        self.failed = 0
        self.duration_sum_us = 0
        self.min_us: int | None = None
        self.max_us: int | None = None
        self.buckets: dict[int, int] = defaultdict(int)


FLOW_PREFIX = "F"


class ShardStats:
    """Per-endpoint (and per-flow) counters of one shard since its last flush."""

    def __init__(self, endpoint_count: int, flow_count: int = 0) -> None:
        self._endpoint_count = endpoint_count
        self._flow_count = flow_count
        self._reset()

    def _reset(self) -> None:
        self._endpoints = [_EndpointCounters() for _ in range(self._endpoint_count)]
        self._flows = [_FlowCounters() for _ in range(self._flow_count)]
        self._series: dict[int, list[int]] = {}
        self._requests = 0
        self._touched: set[int] = set()  # endpoints with only not-sent counts

    def record(
        self,
        endpoint: int,
        latency_us: int | None,
        failure: str | None,
        second: int,
        unavailable: bool = False,
        unreached: bool = False,
    ) -> None:
        """One finished request. ``latency_us`` is None when it has no meaningful latency.
        ``unavailable`` marks failures that say the target is down (see ``breaker``);
        ``unreached`` an attempt whose bytes never left (refused, connect timeout, DNS): a
        request and a failure still, and counted apart so the totals say what the target
        received."""
        counters, point = self._count_request(endpoint, second, unreached)
        if failure is not None:
            counters.failures[failure] += 1
            point[1] += 1
            if unavailable:
                point[2] += 1
        if latency_us is not None:
            counters.latency_sum_us += latency_us
            counters.buckets[bucket_index(latency_us)] += 1
            if counters.min_us is None or latency_us < counters.min_us:
                counters.min_us = latency_us
            if counters.max_us is None or latency_us > counters.max_us:
                counters.max_us = latency_us
            point[3] += latency_us

    def record_cut(self, endpoint: int, second: int, unreached: bool = False) -> None:
        """A request a stop cut before its answer came: sent (unless ``unreached``: cut while
        connecting), so a request in the totals the target's count is compared with, but no
        failure of the target's and no latency."""
        counters, _ = self._count_request(endpoint, second, unreached)
        counters.cut += 1

    def _count_request(
        self, endpoint: int, second: int, unreached: bool
    ) -> tuple[_EndpointCounters, list[int]]:
        """One more request of ``endpoint`` (and of its second's point): the endpoint's
        counters and the point, for the caller to add what else it knows."""
        counters = self._endpoints[endpoint]
        counters.requests += 1
        if unreached:
            counters.unreached += 1
        self._requests += 1
        point = self._series.get(second)
        if point is None:
            point = self._series[second] = [0, 0, 0, 0, 0]
        point[0] += 1
        return counters, point

    def record_check_failure(self, endpoint: int, check: str) -> None:
        """An answer failed the response check named ``check`` (it is also ``record``-ed,
        as an ``application`` failure: this says which check)."""
        self._endpoints[endpoint].checks[check] += 1

    def record_not_sent(self, endpoint: int, reason: str, second: int) -> None:
        """A request that was due but not sent (``missed`` or ``suppressed``). Suppressed ones
        also count per second: the load reduction reads them as the target being down."""
        self._endpoints[endpoint].not_sent[reason] += 1
        self._touched.add(endpoint)
        if reason == SUPPRESSED:
            point = self._series.get(second)
            if point is None:
                point = self._series[second] = [0, 0, 0, 0, 0]
            point[4] += 1

    def record_flow(self, flow: int, duration_us: int, failed: bool) -> None:
        """One iteration of a flow ended: all its steps answered as expected, or one failed
        (``failed``) and the later ones were not sent. An iteration cut short by a stop is
        not recorded (its requests are)."""
        counters = self._flows[flow]
        counters.iterations += 1
        if failed:
            counters.failed += 1
        counters.duration_sum_us += duration_us
        counters.buckets[bucket_index(duration_us)] += 1
        if counters.min_us is None or duration_us < counters.min_us:
            counters.min_us = duration_us
        if counters.max_us is None or duration_us > counters.max_us:
            counters.max_us = duration_us

    @property
    def pending_requests(self) -> int:
        return self._requests

    def take_delta(self) -> StatsDelta:
        """Everything recorded since the previous call, and start counting afresh."""
        delta = StatsDelta(requests=self._requests)
        for index, counters in enumerate(self._endpoints):
            if counters.requests == 0 and index not in self._touched:
                continue
            prefix = f"{index}:"
            for reason, count in counters.not_sent.items():
                delta.increments[f"{prefix}s:{reason}"] = count
            if counters.requests == 0:
                continue
            delta.increments[prefix + "n"] = counters.requests
            if counters.cut:
                delta.increments[prefix + CUT] = counters.cut
            if counters.unreached:
                delta.increments[prefix + UNREACHED] = counters.unreached
            for failure, count in counters.failures.items():
                delta.increments[f"{prefix}f:{failure}"] = count
            for check, count in counters.checks.items():
                delta.increments[f"{prefix}c:{check}"] = count
            if counters.min_us is not None and counters.max_us is not None:  # set together
                delta.increments[prefix + "sum"] = counters.latency_sum_us
                delta.minima[prefix + "min"] = counters.min_us
                delta.maxima[prefix + "max"] = counters.max_us
            for bucket, count in counters.buckets.items():
                delta.increments[f"{prefix}h:{bucket}"] = count
        for index, flow in enumerate(self._flows):
            if flow.iterations == 0 or flow.min_us is None or flow.max_us is None:
                continue
            prefix = f"{FLOW_PREFIX}{index}:"
            delta.increments[prefix + "n"] = flow.iterations
            if flow.failed:
                delta.increments[prefix + "f"] = flow.failed
            delta.increments[prefix + "sum"] = flow.duration_sum_us
            delta.minima[prefix + "min"] = flow.min_us
            delta.maxima[prefix + "max"] = flow.max_us
            for bucket, count in flow.buckets.items():
                delta.increments[f"{prefix}h:{bucket}"] = count
        for second, point in self._series.items():
            requests, failures, unavailable, latency_sum_us, suppressed = point
            if requests:
                delta.series[f"{second}:n"] = requests
            if failures:
                delta.series[f"{second}:f"] = failures
            if unavailable:
                delta.series[f"{second}:u"] = unavailable
            if suppressed:
                delta.series[f"{second}:x"] = suppressed
            if latency_sum_us:
                delta.series[f"{second}:sum"] = latency_sum_us
        self._reset()
        return delta


@dataclass
class EndpointTotals:
    """One endpoint's cumulative figures as read back from the session's ``stats`` hash."""

    requests: int = 0
    failures_by_class: dict[str, int] = field(default_factory=dict)
    not_sent: dict[str, int] = field(default_factory=dict)
    cut_by_stop: int = 0  # in ``requests``, never in failures
    unreached: int = 0  # in ``requests``: never reached the target
    latency_sum_us: int = 0
    min_us: int | None = None
    max_us: int | None = None
    histogram: dict[int, int] = field(default_factory=dict)
    check_failures: dict[str, int] = field(default_factory=dict)  # check name -> answers

    @property
    def failures(self) -> int:
        return sum(self.failures_by_class.values())

    @property
    def latency_samples(self) -> int:
        return sum(self.histogram.values())

    def mean_ms(self) -> float | None:
        samples = self.latency_samples
        return self.latency_sum_us / samples / 1000.0 if samples else None

    def percentiles_ms(self) -> dict[float, float | None]:
        return percentiles_ms(self.histogram, QUANTILES, min_us=self.min_us, max_us=self.max_us)


@dataclass
class FlowTotals:
    """One flow's cumulative figures as read back from the session's ``stats`` hash."""

    iterations: int = 0
    failed: int = 0
    duration_sum_us: int = 0
    min_us: int | None = None
    max_us: int | None = None
    histogram: dict[int, int] = field(default_factory=dict)

    def mean_ms(self) -> float | None:
        return self.duration_sum_us / self.iterations / 1000.0 if self.iterations else None

    def percentiles_ms(self) -> dict[float, float | None]:
        return percentiles_ms(self.histogram, QUANTILES, min_us=self.min_us, max_us=self.max_us)


def parse_flow_stats(raw: dict[bytes | str, bytes | str]) -> dict[int, FlowTotals]:
    """Turn the ``stats`` hash's flow fields back into totals per flow position."""
    totals: dict[int, FlowTotals] = defaultdict(FlowTotals)
    for flow, kind, detail, value in _stats_fields(raw, flows=True):
        entry = totals[flow]
        if kind == "n":
            entry.iterations = value
        elif kind == "f":
            entry.failed = value
        elif kind == "sum":
            entry.duration_sum_us = value
        else:
            _read_distribution(entry, kind, detail, value)
    return dict(totals)


def _stats_fields(
    raw: dict[bytes | str, bytes | str], *, flows: bool
) -> Iterator[tuple[int, str, str, int]]:
    """The ``stats`` hash's endpoint fields (or its flow fields) as (position, kind, detail,
    value): ``3:f:timeout`` is (3, "f", "timeout", n)."""
    for raw_name, raw_value in raw.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        if name.startswith(FLOW_PREFIX) != flows:
            continue
        position, _, rest = name.removeprefix(FLOW_PREFIX).partition(":")
        kind, _, detail = rest.partition(":")
        yield int(position), kind, detail, int(raw_value)


def _read_distribution(
    entry: EndpointTotals | FlowTotals, kind: str, detail: str, value: int
) -> None:
    """A histogram bucket or an extreme of a distribution, endpoints' and flows' alike."""
    if kind == "h":
        entry.histogram[int(detail)] = value
    elif kind == "min":
        entry.min_us = value
    elif kind == "max":
        entry.max_us = value


def _distribution_fields(prefix: str, entry: EndpointTotals | FlowTotals) -> dict[str, int]:
    fields = {f"{prefix}h:{bucket}": count for bucket, count in entry.histogram.items()}
    if entry.min_us is not None:
        fields[prefix + "min"] = entry.min_us
    if entry.max_us is not None:
        fields[prefix + "max"] = entry.max_us
    return fields


def flow_stats_hash_fields(totals: Mapping[int, FlowTotals]) -> dict[str, int]:
    """The flow fields of the ``stats`` hash that ``parse_flow_stats`` reads back as
    ``totals`` (see ``stats_hash_fields``)."""
    fields: dict[str, int] = {}
    for index, entry in totals.items():
        prefix = f"{FLOW_PREFIX}{index}:"
        if entry.iterations:
            fields[prefix + "n"] = entry.iterations
        if entry.failed:
            fields[prefix + "f"] = entry.failed
        if entry.duration_sum_us:
            fields[prefix + "sum"] = entry.duration_sum_us
        fields.update(_distribution_fields(prefix, entry))
    return fields


def parse_stats_hash(raw: dict[bytes | str, bytes | str]) -> dict[int, EndpointTotals]:
    """Turn the ``stats`` hash back into totals per endpoint position (flows' fields are
    ``parse_flow_stats``'s)."""
    totals: dict[int, EndpointTotals] = defaultdict(EndpointTotals)
    for endpoint, kind, detail, value in _stats_fields(raw, flows=False):
        entry = totals[endpoint]
        if kind == "n":
            entry.requests = value
        elif kind == CUT:
            entry.cut_by_stop = value
        elif kind == UNREACHED:
            entry.unreached = value
        elif kind == "f":
            entry.failures_by_class[detail] = value
        elif kind == "s":
            entry.not_sent[detail] = value
        elif kind == "c":
            entry.check_failures[detail] = value
        elif kind == "sum":
            entry.latency_sum_us = value
        else:
            _read_distribution(entry, kind, detail, value)
    return dict(totals)


def stats_hash_fields(totals: Mapping[int, EndpointTotals]) -> dict[str, int]:
    """The ``stats`` hash that ``parse_stats_hash`` reads back as ``totals``: what a session's
    counters are seeded with when its Redis state is rebuilt from the database, so that the
    shards' increments add to the totals saved before rather than start again from zero."""
    fields: dict[str, int] = {}
    for index, entry in totals.items():
        prefix = f"{index}:"
        if entry.requests:
            fields[prefix + "n"] = entry.requests
        if entry.cut_by_stop:
            fields[prefix + CUT] = entry.cut_by_stop
        if entry.unreached:
            fields[prefix + UNREACHED] = entry.unreached
        for failure, count in entry.failures_by_class.items():
            fields[f"{prefix}f:{failure}"] = count
        for reason, count in entry.not_sent.items():
            fields[f"{prefix}s:{reason}"] = count
        for check, count in entry.check_failures.items():
            fields[f"{prefix}c:{check}"] = count
        if entry.latency_sum_us:
            fields[prefix + "sum"] = entry.latency_sum_us
        fields.update(_distribution_fields(prefix, entry))
    return fields


@dataclass
class SecondTotals:
    """One second of a session, summed over shards and endpoints."""

    requests: int = 0
    failures: int = 0
    unavailable: int = 0
    latency_sum_us: int = 0
    suppressed: int = 0


_SERIES_FIELDS = {
    "n": "requests",
    "f": "failures",
    "u": "unavailable",
    "sum": "latency_sum_us",
    "x": "suppressed",
}


def parse_series_hash(raw: dict[bytes | str, bytes | str]) -> dict[int, SecondTotals]:
    """Per-second totals from a drained ``series`` hash."""
    points: dict[int, SecondTotals] = defaultdict(SecondTotals)
    for raw_name, raw_value in raw.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        second, _, kind = name.partition(":")
        point = points[int(second)]
        attribute = _SERIES_FIELDS[kind]
        setattr(point, attribute, getattr(point, attribute) + int(raw_value))
    return dict(points)
