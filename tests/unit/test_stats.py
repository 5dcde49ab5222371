"""A shard's in-memory statistics, the deltas it flushes, and reading the Redis hashes back."""

import math
import random
from fractions import Fraction

import pytest

from apps.workers.histogram import bucket_index, percentiles_ms
from apps.workers.stats import (
    QUANTILES,
    EndpointTotals,
    SecondTotals,
    ShardStats,
    StatsDelta,
    parse_series_hash,
    parse_stats_hash,
    stats_hash_fields,
)


def apply_flush(stats: dict[str, int], series: dict[str, int], delta: StatsDelta) -> None:
    """What the Redis flush script does: HINCRBY increments and series, max/min extremes."""
    for name, value in delta.increments.items():
        stats[name] = stats.get(name, 0) + value
    for name, value in delta.maxima.items():
        stats[name] = max(stats.get(name, value), value)
    for name, value in delta.minima.items():
        stats[name] = min(stats.get(name, value), value)
    for name, value in delta.series.items():
        series[name] = series.get(name, 0) + value


def as_redis_reply(hash_: dict[str, int]) -> dict[bytes, bytes]:
    """HGETALL through redis-py without decode_responses: bytes names and values."""
    return {name.encode(): str(value).encode() for name, value in hash_.items()}


# --- ShardStats.record / take_delta -----------------------------------------------------------


def test_take_delta_uses_the_documented_field_names_and_values():
    stats = ShardStats(endpoint_count=2)
    stats.record(0, 1_000, None, second=100)
    stats.record(0, 3_000, "http_500", second=100)
    stats.record(1, 500, "timeout", second=101)

    delta = stats.take_delta()

    assert delta.requests == 3
    assert delta.increments == {
        "0:n": 2,
        "0:f:http_500": 1,
        "0:sum": 4_000,
        f"0:h:{bucket_index(1_000)}": 1,
        f"0:h:{bucket_index(3_000)}": 1,
        "1:n": 1,
        "1:f:timeout": 1,
        "1:sum": 500,
        f"1:h:{bucket_index(500)}": 1,
    }
    assert delta.minima == {"0:min": 1_000, "1:min": 500}
    assert delta.maxima == {"0:max": 3_000, "1:max": 500}
    assert delta.series == {
        "100:n": 2,
        "100:f": 1,
        "100:sum": 4_000,
        "101:n": 1,
        "101:f": 1,
        "101:sum": 500,
    }


def test_same_bucket_latencies_are_counted_together():
    stats = ShardStats(endpoint_count=1)
    for _ in range(3):
        stats.record(0, 42, None, second=1)
    assert stats.take_delta().increments[f"0:h:{bucket_index(42)}"] == 3


def test_endpoints_without_requests_and_seconds_without_failures_are_left_out():
    stats = ShardStats(endpoint_count=3)
    stats.record(1, 700, None, second=5)

    delta = stats.take_delta()

    assert {name.split(":")[0] for name in delta.increments} == {"1"}
    assert set(delta.series) == {"5:n", "5:sum"}


def test_a_zero_latency_is_a_real_sample():
    stats = ShardStats(endpoint_count=1)
    stats.record(0, 0, None, second=9)

    delta = stats.take_delta()

    assert delta.increments == {"0:n": 1, "0:sum": 0, "0:h:0": 1}
    assert delta.minima == {"0:min": 0}
    assert delta.maxima == {"0:max": 0}


def test_cancelled_request_counts_as_request_and_failure_without_a_latency_sample():
    stats = ShardStats(endpoint_count=1)
    stats.record(0, None, "cancelled", second=7)

    delta = stats.take_delta()

    assert delta.requests == 1
    assert delta.increments == {"0:n": 1, "0:f:cancelled": 1}
    assert delta.minima == {}
    assert delta.maxima == {}
    assert delta.series == {"7:n": 1, "7:f": 1}


def test_request_cut_by_a_stop_counts_as_a_request_but_never_as_a_failure():
    stats = ShardStats(endpoint_count=1)
    stats.record_cut(0, second=7)
    stats.record_cut(0, second=7, unreached=True)  # cut while connecting: never sent

    delta = stats.take_delta()

    assert delta.requests == 2
    assert delta.increments == {"0:n": 2, "0:cut": 2, "0:unreached": 1}
    assert delta.series == {"7:n": 2}  # no failure in the second either
    totals = parse_stats_hash(delta.increments)[0]
    assert (totals.requests, totals.failures, totals.cut_by_stop, totals.unreached) == (2, 0, 2, 1)


def test_unreached_attempt_is_a_request_and_a_failure_counted_apart():
    stats = ShardStats(endpoint_count=1)
    stats.record(0, 1500, "network", second=3, unavailable=True, unreached=True)
    stats.record(0, 900, None, second=3)

    totals = parse_stats_hash(stats.take_delta().increments)[0]

    assert totals.requests == 2
    assert totals.failures_by_class == {"network": 1}
    assert totals.unreached == 1
    assert totals.cut_by_stop == 0


def test_cut_and_unreached_counts_survive_a_rebuild_from_the_database():
    totals = {0: EndpointTotals(requests=9, cut_by_stop=3, unreached=2)}
    back = parse_stats_hash(stats_hash_fields(totals))[0]
    assert (back.requests, back.cut_by_stop, back.unreached) == (9, 3, 2)


def test_pending_requests_counts_records_since_the_last_delta():
    stats = ShardStats(endpoint_count=2)
    assert stats.pending_requests == 0
    stats.record(0, 10, None, second=1)
    stats.record(1, None, "cancelled", second=1)
    assert stats.pending_requests == 2
    stats.take_delta()
    assert stats.pending_requests == 0


def test_take_delta_resets_the_counters():
    stats = ShardStats(endpoint_count=1)
    stats.record(0, 5_000, "http_503", second=1)
    stats.take_delta()

    empty = stats.take_delta()
    assert empty == StatsDelta()

    stats.record(0, 200, None, second=2)
    delta = stats.take_delta()
    assert delta.requests == 1
    assert delta.increments == {"0:n": 1, "0:sum": 200, f"0:h:{bucket_index(200)}": 1}
    assert delta.minima == {"0:min": 200}
    assert delta.maxima == {"0:max": 200}
    assert delta.series == {"2:n": 1, "2:sum": 200}


# --- StatsDelta.merge -------------------------------------------------------------------------


def test_merge_sums_increments_and_series_and_keeps_the_extremes():
    older = StatsDelta(
        increments={"0:n": 2, "0:sum": 300, "0:h:5": 1},
        maxima={"0:max": 200, "1:max": 10},
        minima={"0:min": 100, "1:min": 10},
        series={"10:n": 2, "10:sum": 300},
        requests=2,
    )
    newer = StatsDelta(
        increments={"0:n": 3, "0:h:5": 2, "0:f:timeout": 1},
        maxima={"0:max": 150, "1:max": 20, "2:max": 7},
        minima={"0:min": 50, "1:min": 15, "2:min": 7},
        series={"10:n": 1, "11:n": 2, "11:f": 1},
        requests=3,
    )

    older.merge(newer)

    assert older == StatsDelta(
        increments={"0:n": 5, "0:sum": 300, "0:h:5": 3, "0:f:timeout": 1},
        maxima={"0:max": 200, "1:max": 20, "2:max": 7},
        minima={"0:min": 50, "1:min": 10, "2:min": 7},
        series={"10:n": 3, "10:sum": 300, "11:n": 2, "11:f": 1},
        requests=5,
    )


def test_merged_deltas_flush_to_the_same_hash_as_separate_flushes():
    stats = ShardStats(endpoint_count=2)
    rng = random.Random(3)
    deltas = []
    for second in range(4):
        for _ in range(50):
            stats.record(rng.randrange(2), rng.randrange(1, 10**6), None, second=second)
        deltas.append(stats.take_delta())

    separately: tuple[dict, dict] = ({}, {})
    for delta in deltas:
        apply_flush(*separately, delta)
    merged = StatsDelta()
    for delta in deltas:
        merged.merge(delta)
    at_once: tuple[dict, dict] = ({}, {})
    apply_flush(*at_once, merged)

    assert at_once == separately
    assert merged.requests == 200


# --- round trip through the Redis hashes ------------------------------------------------------


@pytest.fixture
def flushed():
    """Three flushes of two shards, with every latency kept for the expected figures."""
    rng = random.Random(11)
    shards = [ShardStats(endpoint_count=2), ShardStats(endpoint_count=2)]
    stats_hash: dict[str, int] = {}
    series_hash: dict[str, int] = {}
    latencies: dict[int, list[int]] = {0: [], 1: []}
    failures: dict[int, dict[str, int]] = {0: {}, 1: {}}
    requests: dict[int, int] = {0: 0, 1: 0}
    per_second: dict[int, SecondTotals] = {}
    for second in (1000, 1001, 1002):
        for shard in shards:
            for _ in range(200):
                endpoint = rng.randrange(2)
                failure = rng.choice([None, None, None, "http_500", "timeout"])
                latency = int(rng.lognormvariate(9 + endpoint, 0.7))
                if failure == "timeout" and rng.random() < 0.5:
                    latency, failure = None, "cancelled"
                unavailable = failure == "timeout"
                shard.record(endpoint, latency, failure, second, unavailable)
                requests[endpoint] += 1
                point = per_second.setdefault(second, SecondTotals())
                point.requests += 1
                if failure:
                    failures[endpoint][failure] = failures[endpoint].get(failure, 0) + 1
                    point.failures += 1
                    point.unavailable += unavailable
                if latency is not None:
                    latencies[endpoint].append(latency)
                    point.latency_sum_us += latency
            apply_flush(stats_hash, series_hash, shard.take_delta())
    return {
        "stats": stats_hash,
        "series": series_hash,
        "latencies": latencies,
        "failures": failures,
        "requests": requests,
        "per_second": per_second,
    }


def test_parse_stats_hash_gives_the_totals_per_endpoint(flushed):
    totals = parse_stats_hash(as_redis_reply(flushed["stats"]))

    assert set(totals) == {0, 1}
    for endpoint, entry in totals.items():
        latencies = flushed["latencies"][endpoint]
        histogram: dict[int, int] = {}
        for latency in latencies:
            histogram[bucket_index(latency)] = histogram.get(bucket_index(latency), 0) + 1
        assert entry.requests == flushed["requests"][endpoint]
        assert entry.failures_by_class == flushed["failures"][endpoint]
        assert entry.failures == sum(flushed["failures"][endpoint].values())
        assert entry.latency_sum_us == sum(latencies)
        assert entry.min_us == min(latencies)
        assert entry.max_us == max(latencies)
        assert entry.histogram == histogram
        assert entry.latency_samples == len(latencies)
        assert entry.mean_ms() == pytest.approx(sum(latencies) / len(latencies) / 1000)
        assert entry.percentiles_ms() == percentiles_ms(
            histogram, QUANTILES, min_us=min(latencies), max_us=max(latencies)
        )


def test_cancelled_requests_make_requests_exceed_latency_samples(flushed):
    totals = parse_stats_hash(as_redis_reply(flushed["stats"]))
    for endpoint, entry in totals.items():
        cancelled = flushed["failures"][endpoint]["cancelled"]
        assert cancelled > 0
        assert entry.latency_samples == entry.requests - cancelled


def test_round_trip_percentiles_are_close_to_the_exact_ones(flushed):
    totals = parse_stats_hash(as_redis_reply(flushed["stats"]))
    for endpoint, entry in totals.items():
        ordered = sorted(flushed["latencies"][endpoint])
        result = entry.percentiles_ms()
        assert set(result) == set(QUANTILES)
        for q in QUANTILES:
            rank = math.ceil(Fraction(str(q)) * len(ordered))
            assert result[q] == pytest.approx(ordered[rank - 1] / 1000, rel=0.005), q


def test_parse_series_hash_gives_the_totals_per_second(flushed):
    points = parse_series_hash(as_redis_reply(flushed["series"]))
    assert points == flushed["per_second"]


def test_series_seconds_without_failures_or_latency_read_as_zero():
    assert parse_series_hash({b"5:n": b"3"}) == {5: SecondTotals(requests=3)}


def test_parse_functions_accept_str_and_bytes_alike(flushed):
    as_str = {name: str(value) for name, value in flushed["stats"].items()}
    assert parse_stats_hash(as_str) == parse_stats_hash(as_redis_reply(flushed["stats"]))
    series_str = {name: str(value) for name, value in flushed["series"].items()}
    assert parse_series_hash(series_str) == flushed["per_second"]


def test_parse_stats_hash_reads_each_documented_field():
    raw = {
        b"3:n": b"10",
        "3:f:http_500": "2",
        b"3:f:timeout": "1",
        "3:sum": b"9000",
        b"3:h:42": b"4",
        "3:h:300": "5",
        b"3:min": b"42",
        b"3:max": b"1234",
    }
    assert parse_stats_hash(raw) == {
        3: EndpointTotals(
            requests=10,
            failures_by_class={"http_500": 2, "timeout": 1},
            latency_sum_us=9000,
            min_us=42,
            max_us=1234,
            histogram={42: 4, 300: 5},
        )
    }


def test_endpoint_with_only_cancelled_requests_has_no_latency_figures():
    stats_hash: dict[str, int] = {}
    shard = ShardStats(endpoint_count=1)
    shard.record(0, None, "cancelled", second=1)
    apply_flush(stats_hash, {}, shard.take_delta())

    entry = parse_stats_hash(as_redis_reply(stats_hash))[0]

    assert (entry.requests, entry.failures) == (1, 1)
    assert entry.latency_samples == 0
    assert entry.mean_ms() is None
    assert entry.min_us is None and entry.max_us is None
    assert set(entry.percentiles_ms().values()) == {None}
