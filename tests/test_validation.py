"""The shared checks: target allow-list, endpoint URLs and session configuration rules."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from apps.sessions.validation import (
    check_endpoint_url,
    check_session_config,
    check_target_url,
    effective_weights,
    is_host_allowed,
)


@pytest.fixture(autouse=True)
def allow_list(settings):
    settings.ALLOWED_TARGET_HOSTS = ["localhost", "127.0.0.1", "app", ".example.com"]
    settings.MAX_USERS_PER_SESSION = 100
    settings.MAX_DURATION_MINUTES = 0
    return settings


# --- is_host_allowed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.0.0.1",
        "app",
        "example.com",
        "api.example.com",
        "a.b.example.com",
        "LOCALHOST",
        "Api.Example.COM",
        "localhost.",
        "api.example.com.",
    ],
)
def test_allowed_hosts(host):
    assert is_host_allowed(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "badexample.com",
        "example.com.attacker.net",
        "localhost.evil.example",
        "evillocalhost",
        "127.0.0.2",
        "169.254.169.254",
        "application",
        "example.co",
    ],
)
def test_refused_hosts(host):
    assert not is_host_allowed(host)


# --- check_target_url -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost",
        "http://localhost:5001",
        "https://localhost/",
        "http://127.0.0.1:8000/api",
        "http://app:5001",
        "https://example.com",
        "https://api.example.com:8443/v1",
        "HTTP://LOCALHOST:5001/",
        "http://localhost.:5001",
    ],
)
def test_target_url_on_the_allow_list_passes(url):
    assert check_target_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://localhost.evil.example/",
        "http://127.0.0.1@evil.example/",
        "http://user:pw@localhost/",
        "http://user@localhost/",
        "ftp://localhost/",
        "file:///etc/passwd",
        "localhost:5001",
        "http://",
        "http:///path",
        "http://localhost:99999/",
        "http://localhost:port/",
        "http://evil.example.com.attacker.net/",
        "http://badexample.com/",
        "",
    ],
)
def test_target_url_is_refused(url):
    with pytest.raises(ValidationError):
        check_target_url(url)


def test_refusal_names_the_host_and_the_allow_list():
    with pytest.raises(ValidationError) as exc:
        check_target_url("http://169.254.169.254/latest")
    message = exc.value.messages[0]
    assert "169.254.169.254" in message
    assert "localhost, 127.0.0.1, app, .example.com" in message


def test_the_allow_list_is_read_at_call_time(settings):
    settings.ALLOWED_TARGET_HOSTS = ["app"]
    with pytest.raises(ValidationError):
        check_target_url("http://localhost:5001")
    check_target_url("http://app:5001")


# --- check_endpoint_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/", "/path", "/performance/slow?x=1", "http://localhost:5001/x", "https://example.com"]
)
def test_endpoint_url_path_or_allowed_absolute_url_passes(url):
    assert check_endpoint_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "//evil/x",
        "//localhost/x",
        "relative",
        "path/x",
        "",
        "http://evil.example/x",
        "http://user:pw@localhost/x",
        "ftp://localhost/x",
    ],
)
def test_endpoint_url_is_refused(url):
    with pytest.raises(ValidationError):
        check_endpoint_url(url)


# --- check_session_config ---------------------------------------------------------------------

DEFAULT_WEIGHTS = {"slow": 1.0, "error": 2.0}


def config(**changes):
    return {
        "concurrent_users": 10,
        "duration_minutes": Decimal("1.5"),
        "request_interval_min": 1.0,
        "request_interval_max": 5.0,
        "max_errors_per_minute": 0,
        "endpoint_weights": {},
        "endpoint_default_weights": DEFAULT_WEIGHTS,
        **changes,
    }


def refused_fields(**changes) -> set[str]:
    with pytest.raises(ValidationError) as exc:
        check_session_config(**config(**changes))
    return set(exc.value.message_dict)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"concurrent_users": 1},
        {"concurrent_users": 100},
        {"duration_minutes": None},
        {"duration_minutes": Decimal("0")},
        {"duration_minutes": 0.25},
        {"request_interval_min": 0, "request_interval_max": 0},
        {"request_interval_min": 2.0, "request_interval_max": 2.0},
        {"max_errors_per_minute": 30},
        {"endpoint_weights": None},
        {"endpoint_weights": {"slow": 0}},
        {"endpoint_weights": {"slow": 3, "error": 0.5}},
    ],
)
def test_valid_config_raises_nothing(changes):
    assert check_session_config(**config(**changes)) is None


@pytest.mark.parametrize("users", [0, -1, None])
def test_fewer_than_one_user_is_refused(users):
    assert refused_fields(concurrent_users=users) == {"concurrent_users"}


def test_more_users_than_max_users_per_session_is_refused(settings):
    assert refused_fields(concurrent_users=101) == {"concurrent_users"}
    settings.MAX_USERS_PER_SESSION = 1000
    check_session_config(**config(concurrent_users=101))


@pytest.mark.parametrize("duration", [Decimal("-0.5"), -1])
def test_negative_duration_is_refused(duration):
    assert refused_fields(duration_minutes=duration) == {"duration_minutes"}


@pytest.mark.parametrize("duration", [Decimal("60.01"), 61, Decimal("0")])
def test_duration_ceiling_refuses_longer_runs_and_run_until_stopped(settings, duration):
    settings.MAX_DURATION_MINUTES = 60
    assert refused_fields(duration_minutes=duration) == {"duration_minutes"}


@pytest.mark.parametrize("duration", [Decimal("60"), Decimal("0.25"), 1])
def test_duration_ceiling_admits_durations_up_to_it(settings, duration):
    settings.MAX_DURATION_MINUTES = 60
    check_session_config(**config(duration_minutes=duration))


def test_no_duration_ceiling_admits_long_runs_and_run_until_stopped():
    check_session_config(**config(duration_minutes=Decimal("100000")))
    check_session_config(**config(duration_minutes=Decimal("0")))


def test_negative_min_interval_is_refused():
    assert refused_fields(request_interval_min=-0.1) == {"request_interval_min"}


def test_negative_max_interval_is_refused():
    # -0.1 is also below the minimum of 0, which is reported on request_interval_min.
    assert "request_interval_max" in refused_fields(
        request_interval_min=0, request_interval_max=-0.1
    )


def test_min_interval_above_max_interval_is_refused():
    assert refused_fields(request_interval_min=5.0, request_interval_max=1.0) == {
        "request_interval_min"
    }


def test_negative_max_errors_per_minute_is_refused():
    assert refused_fields(max_errors_per_minute=-1) == {"max_errors_per_minute"}


@pytest.mark.parametrize("weights", [["slow", 1], "slow=1", 5, ("slow",)])
def test_weights_that_are_not_a_mapping_are_refused(weights):
    assert refused_fields(endpoint_weights=weights) == {"endpoint_weights"}


def test_unknown_endpoint_name_is_refused_and_named():
    with pytest.raises(ValidationError) as exc:
        check_session_config(**config(endpoint_weights={"fast": 1}))
    assert set(exc.value.message_dict) == {"endpoint_weights"}
    assert "'fast'" in exc.value.message_dict["endpoint_weights"][0]


@pytest.mark.parametrize("weight", ["1", None, [1], {"w": 1}, Decimal("1")])
def test_non_number_weight_is_refused(weight):
    assert refused_fields(endpoint_weights={"slow": weight}) == {"endpoint_weights"}


@pytest.mark.parametrize("weight", [True, False])
def test_bool_weight_is_refused(weight):
    assert refused_fields(endpoint_weights={"slow": weight}) == {"endpoint_weights"}


@pytest.mark.parametrize("weight", [-1, -0.5])
def test_negative_weight_is_refused(weight):
    assert refused_fields(endpoint_weights={"slow": weight}) == {"endpoint_weights"}


def test_all_weights_zero_is_refused():
    assert refused_fields(endpoint_weights={"slow": 0, "error": 0.0}) == {"endpoint_weights"}


def test_target_whose_endpoints_are_all_disabled_is_refused():
    assert refused_fields(endpoint_default_weights={"slow": 0.0}) == {"endpoint_weights"}


def test_target_without_endpoints_is_refused():
    assert refused_fields(endpoint_default_weights={}) == {"endpoint_weights"}


def test_override_can_enable_an_endpoint_disabled_by_default():
    check_session_config(
        **config(endpoint_default_weights={"slow": 0.0}, endpoint_weights={"slow": 1})
    )


def test_every_broken_rule_is_reported_at_once():
    assert refused_fields(
        concurrent_users=0,
        duration_minutes=-1,
        request_interval_min=-1,
        max_errors_per_minute=-1,
        endpoint_weights={"nope": 1},
    ) == {
        "concurrent_users",
        "duration_minutes",
        "request_interval_min",
        "max_errors_per_minute",
        "endpoint_weights",
    }


# --- effective_weights ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (None, {"slow": 1.0, "error": 2.0}),
        ({}, {"slow": 1.0, "error": 2.0}),
        ({"slow": 5}, {"slow": 5.0, "error": 2.0}),
        ({"error": 0}, {"slow": 1.0, "error": 0.0}),
        ({"slow": 0.5, "error": 3}, {"slow": 0.5, "error": 3.0}),
        ({"unknown": 9}, {"slow": 1.0, "error": 2.0}),
    ],
    ids=["none", "empty", "override-one", "zero-leaves-out", "override-all", "unknown-ignored"],
)
def test_effective_weights_override_by_name(overrides, expected):
    result = effective_weights(DEFAULT_WEIGHTS, overrides)
    assert result == expected
    assert all(isinstance(weight, float) for weight in result.values())


def test_effective_weights_keep_the_target_endpoints_only():
    assert effective_weights({}, {"slow": 1}) == {}
