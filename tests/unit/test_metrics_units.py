"""Pure parts of /metrics: the stored histogram read at fixed bounds, address lists."""

import ipaddress
import random

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.workers.histogram import bucket_bounds, bucket_index, cumulative_counts
from loadtest_project.networks import address_in, parse_networks

LIMITS_US = [1_000, 2_500, 5_000, 10_000, 100_000, 1_000_000]


def test_cumulative_counts_never_overcount_and_miss_only_the_straddling_bucket():
    rng = random.Random(13)
    latencies = [int(rng.lognormvariate(8.5, 1.5)) for _ in range(20_000)]
    counts: dict[int, int] = {}
    for value in latencies:
        counts[bucket_index(value)] = counts.get(bucket_index(value), 0) + 1

    cumulative = cumulative_counts(counts, LIMITS_US)

    for limit, counted in zip(LIMITS_US, cumulative, strict=True):
        at_most = sum(value <= limit for value in latencies)
        # The bucket holding the limit is the only one left out; it is under 1/128 wide.
        straddling_low = bucket_bounds(bucket_index(limit))[0]
        assert sum(value < straddling_low for value in latencies) == counted <= at_most
        assert limit - straddling_low < limit / 128 + 1
    assert cumulative == sorted(cumulative)


def test_cumulative_counts_accept_the_database_form_and_drop_values_beyond_the_last_bound():
    stored = {str(bucket_index(10)): 2, str(bucket_index(999)): 3, str(bucket_index(5_000_000)): 4}
    assert cumulative_counts(stored, [1_000, 2_000]) == [5, 5]
    assert cumulative_counts({}, [1_000]) == [0]


def test_a_bucket_whose_values_are_all_within_the_bound_counts_at_it():
    # Below 256 µs each value has a bucket of its own: exact at the bound itself.
    assert cumulative_counts({bucket_index(200): 1}, [200]) == [1]
    assert cumulative_counts({bucket_index(201): 1}, [200]) == [0]


def test_parse_networks_reads_addresses_and_cidrs_and_names_the_variable_on_a_typo():
    networks = parse_networks("METRICS_ALLOWED_ADDRESSES", ["127.0.0.1", " 10.1.2.3/8 ", "::1", ""])
    assert networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    for bad in ("10.0.0.0/33", "localhost", "1.2.3.4; DROP", "\u0661.2.3.4"):
        with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_ADDRESSES"):
            parse_networks("METRICS_ALLOWED_ADDRESSES", [bad])


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.200.0.1", True),
        ("::ffff:10.0.0.5", True),  # IPv4 through a dual-stack socket
        ("::1", True),
        ("11.0.0.1", False),
        ("::2", False),
        (None, False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_address_in(address, allowed):
    networks = parse_networks("X", ["10.0.0.0/8", "::1"])
    assert address_in(address, networks) is allowed
