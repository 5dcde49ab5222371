"""The shared checks: target allow-list, endpoint URLs and session configuration rules."""

import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apps.sessions.validation import (
    BODY_BYTES_MAX,
    JSON_DEPTH_MAX,
    check_body,
    check_endpoint_url,
    check_headers,
    check_host_header,
    check_session_config,
    check_single_line,
    check_target_url,
    check_text,
    effective_weights,
    is_allowed,
    json_depth,
    loads_json,
)
from loadtest_project.allowlist import parse_allow_list

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def allow_list(settings):
    settings.ALLOWED_TARGET_HOSTS = [
        "localhost:5001",
        "127.0.0.1:*",
        "app",
        ".example.com",
        ".corp.example:8443",
        "[::1]:8080",
    ]
    settings.MAX_USERS_PER_SESSION = 100
    settings.MAX_DURATION_MINUTES = 0
    return settings


# --- the allow-list: hosts and ports ----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "scheme"),
    [
        ("localhost", 5001, "http"),
        ("localhost", 5001, "https"),  # host:port admits that port whatever the scheme
        ("LOCALHOST", 5001, "http"),
        ("localhost.", 5001, "http"),
        ("127.0.0.1", 8000, "http"),  # host:* admits any port
        ("127.0.0.1", 80, "http"),
        ("app", 80, "http"),  # a bare host: the scheme's default port
        ("app", 443, "https"),
        ("example.com", 443, "https"),
        ("api.example.com", 80, "http"),
        ("a.b.example.com", 443, "https"),
        ("Api.Example.COM", 443, "https"),
        ("x.corp.example", 8443, "https"),
        ("corp.example", 8443, "http"),
        ("::1", 8080, "http"),
        ("0:0::1", 8080, "http"),  # IPv6 compared in its normal form
    ],
)
def test_allowed_host_and_port(host, port, scheme):
    assert is_allowed(host, port, scheme)


@pytest.mark.parametrize(
    ("host", "port", "scheme"),
    [
        ("localhost", 6379, "http"),  # Redis on an allowed host
        ("localhost", 80, "http"),  # localhost:5001 names one port only
        ("127.0.0.2", 5432, "https"),
        ("app", 5001, "http"),  # a bare host admits the default port only
        ("app", 80, "https"),
        ("app", 443, "http"),
        ("api.example.com", 8443, "https"),
        ("corp.example", 443, "https"),
        ("::1", 80, "http"),
        ("::2", 8080, "http"),
        (None, 80, "http"),
        ("", 80, "http"),
        ("badexample.com", 443, "https"),
        ("example.com.attacker.net", 443, "https"),
        ("localhost.evil.example", 5001, "http"),
        ("evillocalhost", 5001, "http"),
        ("169.254.169.254", 80, "http"),
        ("application", 80, "http"),
    ],
)
def test_refused_host_and_port(host, port, scheme):
    assert not is_allowed(host, port, scheme)


@pytest.mark.parametrize(
    "entries",
    [
        ["localhost:99999"],
        ["localhost:0"],
        ["localhost:port"],
        ["::1"],  # IPv6 needs brackets
        ["[::1"],
        ["[not-an-address]:80"],
        ["[::1]8080"],
        ["ho st"],
        ["\u2603.example"],
        ["*"],
        ["localhost:5001:1"],
    ],
)
def test_malformed_allow_list_entries_are_refused_with_the_entry_named(entries):
    with pytest.raises(ValueError, match=re.escape(repr(entries[0]))):
        parse_allow_list(entries)


def test_allow_list_entries_are_normalised_and_empty_ones_dropped():
    assert parse_allow_list([" LocalHost:5001 ", "", "[::1]:*"]) == ["localhost:5001", "[::1]:*"]


def test_a_malformed_allow_list_stops_the_service_from_starting(tmp_path):
    env = {**os.environ, "ALLOWED_TARGET_HOSTS": "localhost:5001,localhost:http",
           "DATA_DIR": str(tmp_path)}  # fmt: skip
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert "ImproperlyConfigured: ALLOWED_TARGET_HOSTS: 'localhost:http'" in result.stderr


# --- check_target_url -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:5001",
        "https://localhost:5001/",
        "http://127.0.0.1:8000/api",
        "http://127.0.0.1",
        "http://app",
        "https://app/",
        "http://app:80",
        "https://example.com",
        "https://api.example.com/v1",
        "HTTP://LOCALHOST:5001/",
        "http://localhost.:5001",
        "http://[::1]:8080/",
        "https://x.corp.example:8443/",
    ],
)
def test_target_url_on_the_allow_list_passes(url):
    assert check_target_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:6379/",  # Redis
        "https://127.0.0.2:5432/",  # PostgreSQL, off the list anyway
        "http://localhost/",
        "http://app:5001",
        "https://api.example.com:8443/v1",
        "http://[::1]/",
        "http://[::1]:9090/",
        "http://169.254.169.254/",
        "http://localhost.evil.example/",
        "http://127.0.0.1@evil.example/",
        "http://user:pw@localhost:5001/",
        "http://user@localhost:5001/",
        "ftp://localhost/",
        "file:///etc/passwd",
        "localhost:5001",
        "http://",
        "http:///path",
        "http://localhost:99999/",
        "http://localhost:port/",
        "http://evil.example.com.attacker.net/",
        "http://badexample.com/",
        "http://\u2603.example.com/",  # internationalised names in their xn-- form only
        "http://localhost:5001/a\nb",
        " http://localhost:5001/",
        "http://localhost:5001/\u2028",
        "",
    ],
)
def test_target_url_is_refused(url):
    with pytest.raises(ValidationError):
        check_target_url(url)


def test_refusal_names_the_host_port_and_the_allow_list():
    with pytest.raises(ValidationError) as exc:
        check_target_url("http://localhost:6379/")
    message = exc.value.messages[0]
    assert "'localhost:6379'" in message
    assert "localhost:5001, 127.0.0.1:*, app, .example.com" in message


def test_the_allow_list_is_read_at_call_time(settings):
    settings.ALLOWED_TARGET_HOSTS = ["app:5001"]
    with pytest.raises(ValidationError):
        check_target_url("http://localhost:5001")
    check_target_url("http://app:5001")


# --- check_endpoint_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/path",
        "/performance/slow?x=1",
        "/caf\u00e9 menu/\u2603?q=\u2603 x",  # the engine percent-encodes these (UTF-8)
        "http://localhost:5001/x",
        "https://example.com",
    ],
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
        "http://user:pw@localhost:5001/x",
        "ftp://localhost/x",
        "http://localhost:6379/x",
        "/a\r\nHost: evil",
        "/a\u2028b",
        "/\u202egnp.exe",
        "/a\x00",
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


def check(**changes) -> None:
    """check_session_config of the ``config`` with ``changes``, as the model and the API call it."""
    session_config = config(**changes)
    default_weights = session_config.pop("endpoint_default_weights")
    return check_session_config(session_config, default_weights)


def refused_fields(**changes) -> set[str]:
    with pytest.raises(ValidationError) as exc:
        check(**changes)
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
    assert check(**changes) is None


@pytest.mark.parametrize("users", [0, -1, None])
def test_fewer_than_one_user_is_refused(users):
    assert refused_fields(concurrent_users=users) == {"concurrent_users"}


def test_more_users_than_max_users_per_session_is_refused(settings):
    assert refused_fields(concurrent_users=101) == {"concurrent_users"}
    settings.MAX_USERS_PER_SESSION = 1000
    check(concurrent_users=101)


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
    check(duration_minutes=duration)


def test_no_duration_ceiling_admits_long_runs_and_run_until_stopped():
    check(duration_minutes=Decimal("100000"))
    check(duration_minutes=Decimal("0"))


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
        check(endpoint_weights={"fast": 1})
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
    check(endpoint_default_weights={"slow": 0.0}, endpoint_weights={"slow": 1})


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


# --- bounds of every number -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_errors_per_minute": 10**19}, "max_errors_per_minute"),
        ({"max_errors_per_minute": 2**31}, "max_errors_per_minute"),
        ({"duration_minutes": Decimal("525600.0001")}, "duration_minutes"),
        ({"request_interval_max": 3600.5}, "request_interval_max"),
        ({"request_interval_min": float("nan")}, "request_interval_min"),
        ({"ramp_up_seconds": 86400.5}, "ramp_up_seconds"),
        ({"ramp_up_seconds": float("inf")}, "ramp_up_seconds"),
        ({"endpoint_weights": {"slow": 1e308}}, "endpoint_weights"),
        ({"endpoint_weights": {"slow": 1_000_001}}, "endpoint_weights"),
        ({"endpoint_weights": {"slow": float("nan")}}, "endpoint_weights"),
        ({"concurrent_users": 10**19}, "concurrent_users"),
    ],
)
def test_numbers_beyond_their_bounds_are_refused(changes, field):
    assert refused_fields(**changes) == {field}


def test_numbers_at_their_bounds_pass():
    check(max_errors_per_minute=2**31 - 1, duration_minutes=Decimal(525600),
          request_interval_max=3600.0, ramp_up_seconds=86400.0,
          endpoint_weights={"slow": 1e6})  # fmt: skip


def test_many_unknown_weight_names_make_one_short_message():
    with pytest.raises(ValidationError) as exc:
        check(endpoint_weights={f"n{i}" * 1000: 1 for i in range(5000)})
    (message,) = exc.value.message_dict["endpoint_weights"]
    assert "and 4995 more" in message
    assert len(message) < 1000


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Custom-Auth": "Bearer abc", "Accept": "text/html, */*;q=0.8"},
        {"X-Latin-1": "caf\u00e9 \u00ff", "X-Tab": "a\tb"},
        {f"X-H{i}": "v" for i in range(50)},
        {"X-Big": "v" * 8192},
        {"Host": "localhost:5001"},
    ],
)
def test_headers_http_can_carry_pass(headers):
    check_headers(headers)


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({"X-Snow": "\u2603"}, "U+2603"),
        ({"X-Line": "a\u2028b"}, "U+2028"),
        ({"X-Rtl": "\u202eabc"}, "U+202E"),
        ({"X-Crlf": "a\r\nSet-Cookie: x=1"}, "U+000D"),
        ({"X-Nul": "a\x00"}, "U+0000"),
        ({"X-Trail": "abc\n"}, "U+000A"),
        ({"X-Evil\n": "v"}, "not a valid header name"),
        ({"X-Del": "a\x7f"}, "U+007F"),
        ({f"X-H{i}": "v" for i in range(51)}, "at most 50"),
        ({"X-Big": "v" * 8193}, "8,192 bytes"),
        ({"X" * 257: "v"}, "not a valid header name"),
        ({"Bad Name": "v"}, "not a valid header name"),
        ({"X-A": "1", "x-a": "2"}, "given twice"),
        ({"Content-Length": "0"}, "frames each request"),
        ({"transfer-encoding": "chunked"}, "frames each request"),
        ({"Upgrade": "websocket"}, "HTTP/1.1 only"),
        ({"X-Num": 5}, "must be a string"),
        (["X-A"], "object mapping"),
    ],
)
def test_headers_http_cannot_carry_are_refused_without_quoting_the_value(headers, said):
    with pytest.raises(ValidationError) as exc:
        check_headers(headers)
    message = " ".join(exc.value.messages)
    assert said in message
    assert "Set-Cookie" not in message and "websocket" not in message


def test_a_custom_host_header_is_checked_against_the_allow_list():
    check_host_header("http://127.0.0.1:9000/x", {"Host": "localhost:5001"})
    check_host_header("http://127.0.0.1:5001/x", {"host": "127.0.0.1"})  # the URL's port
    with pytest.raises(ValidationError, match=re.escape("'localhost:6379'")):
        check_host_header("http://127.0.0.1:5001/x", {"Host": "localhost:6379"})
    with pytest.raises(ValidationError, match=re.escape("'evil.example:5001'")):
        check_host_header("http://127.0.0.1:5001/x", {"HOST": "evil.example"})
    with pytest.raises(ValidationError, match="host or host:port"):
        check_host_header("http://127.0.0.1:5001/x", {"Host": "localhost:5001/path"})


# --- text and bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["shop", "\u65e5\u672c\u8a9e\u306e\u30b7\u30e7\u30c3\u30d7",
                                  "caf\u00e9 \u2603", "a b"])  # fmt: skip
def test_names_of_any_script_pass(text):
    check_single_line(text)


@pytest.mark.parametrize("text", ["a\u2028b", "a\u2029b", "\u202eevil", "a\u200fb", "a\nb",
                                  "a\tb", "a\x00b", "a\x1bb", "a\ufeffb"])  # fmt: skip
def test_names_with_controls_separators_or_bidi_marks_are_refused(text):
    with pytest.raises(ValidationError, match="U\\+"):
        check_single_line(text)


def test_descriptions_may_have_line_breaks_but_no_bidi_overrides():
    check_text("line one\nline two\r\n\tindented")
    for text in ("\u202eevil", "a\u2028b", "a\x00b"):
        with pytest.raises(ValidationError):
            check_text(text)


def test_body_is_bounded_in_utf8_bytes():
    check_body("x" * BODY_BYTES_MAX)
    check_body("\u2603 any \u202e text \u2028 goes")
    with pytest.raises(ValidationError, match="1,048,577 bytes"):
        check_body("x" * (BODY_BYTES_MAX + 1))
    with pytest.raises(ValidationError, match="bytes"):
        check_body("\u00e9" * (BODY_BYTES_MAX // 2 + 1))  # 2 bytes each in UTF-8
    with pytest.raises(ValidationError, match="NUL"):
        check_body("a\x00")


# --- JSON from the network ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[[[[[[[[[[[[[[[[[[[[["}', 1),  # brackets inside strings do not count
        ('["\\"[[[["]', 1),  # nor after an escaped quote
    ],
)
def test_json_depth_is_found_without_parsing(text, depth):
    assert json_depth(text) == depth


def test_json_nested_100k_levels_is_refused_quickly_without_recursion():
    deep = "[" * 100_000 + "]" * 100_000
    started = time.perf_counter()
    with pytest.raises(ValueError, match=f"deeper than {JSON_DEPTH_MAX} levels"):
        loads_json(deep)
    assert time.perf_counter() - started < 1.0
    nested = "[" * JSON_DEPTH_MAX + "]" * JSON_DEPTH_MAX
    assert loads_json(nested) is not None


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": -Infinity}', "Infinity"),
        ('{"a": "x\\ud800"}', "surrogate"),
        ('{"a": "' + "\\udfff" + '"}', "surrogate"),
        ('{"a": ' + "9" * 5000 + "}", "digits"),
    ],
)
def test_json_values_no_database_or_number_can_hold_are_refused(text, said):
    with pytest.raises(ValueError, match=said):
        loads_json(text)


def test_json_surrogate_pairs_make_one_character():
    assert loads_json('"\\ud83d\\ude00"') == "\U0001f600"
