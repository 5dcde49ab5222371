"""Expected statuses and response checks as pure logic: the parser that validates them (with
hostile input) and the compiled rules a shard evaluates, on hand-made answers."""

import json
import math

import pytest

from apps.workers.checks import (
    CHECKS_MAX,
    ResponseRules,
    normalise_statuses,
    parse_checks,
    parse_json_path,
    parse_statuses,
    status_table,
    unexpected_status_class,
)
from apps.workers.http import Response


@pytest.mark.parametrize(
    ("spec", "stored"),
    [
        ("200-399", "200-399"),
        (" 200-299 , 404 ", "200-299,404"),
        ("500,503", "500,503"),
        ("200-299,300-399", "200-399"),
        ("200,201,202", "200-202"),
        ("100-599", "100-599"),
    ],
)
def test_statuses_are_stored_normalised(spec, stored):
    assert normalise_statuses(spec) == stored


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "at least one"),
        ("200-", "Item 1 ('200-', at character 1): not a status"),
        ("200,abc", "Item 2 ('abc', at character 5): not a status"),
        ("200,99", "Item 2"),
        ("600", "statuses go from 100 to 599"),
        ("099", "statuses go from 100 to 599"),
        ("399-200", "from the lower status to the higher"),
        ("404,200", "Item 2 ('200', at character 5): items must be in ascending order"),
        ("200-299,250", "without overlap (the previous one ends at 299)"),
        ("200,,404", "Item 2 ('', at character 5)"),
        ("\uff12\uff10\uff10", "not a status"),  # full-width digits: \d, not HTTP
        ("2 00", "not a status"),
        ("1" * 10_000, "At most 200 characters (10,000 given)"),
        ("200," * 60, "At most 200 characters"),
        (None, "as text"),
        (200, "as text"),
        (["200"], "as text"),
    ],
)
def test_bad_statuses_are_refused_naming_the_item(spec, message):
    with pytest.raises(ValueError, match=None) as caught:
        parse_statuses(spec)
    assert message in str(caught.value)


def test_the_status_table_marks_exactly_the_expected_statuses():
    table = status_table("200-299,404,500")
    assert len(table) == 1000
    assert {status for status in range(1000) if table[status]} == {*range(200, 300), 404, 500}


@pytest.mark.parametrize(
    ("status", "failure"),
    [(500, "http_5xx"), (599, "http_5xx"), (404, "http_4xx"), (200, "application"),
     (302, "application")],
)  # fmt: skip
def test_an_unexpected_status_keeps_its_class_and_a_2xx_or_3xx_is_an_application_failure(
    status, failure
):
    assert unexpected_status_class(status) == failure


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("$.a.b[0].c", ("a", "b", 0, "c")),
        ('$["a key"][12]', ("a key", 12)),
        ('$["ünï"]', ("ünï",)),
        ("$.snake_case-name", ("snake_case-name",)),
    ],
)
def test_json_paths_parse_into_steps(path, steps):
    assert parse_json_path(path) == steps


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a.b", 'starts with "$"'),
        ("$.a[*]", "Unexpected '[*]' at character 4"),
        ("$..a", "at character 2"),
        ("$.a[-1]", "at character 4"),
        ("$.__import__('os')", "at character 13"),
        ("$" + ".a" * 33, "at most 32 steps"),
        ("$." + "a" * 300, "at most 200 characters"),
        ('$["a\\"b"]', "at character 2"),
        (42, "is text"),
    ],
)
def test_bad_json_paths_are_refused_with_the_position(path, message):
    with pytest.raises(ValueError, match=None) as caught:
        parse_json_path(path)
    assert message in str(caught.value)


def test_checks_without_names_are_named_after_their_type_uniquely():
    checks = parse_checks(
        [
            {"type": "body_contains", "value": "a"},
            {"type": "body_contains", "value": "b"},
            {"type": "max_ms", "value": 100, "name": "fast"},
        ]
    )
    assert [check.name for check in checks] == ["body_contains", "body_contains-2", "fast"]


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ("body_contains", "checks: a list"),
        ([1], "checks[0]: an object"),
        ([{"type": "body_matches", "value": "x"}], "checks[0].type: one of body_contains"),
        ([{"value": "x"}], "checks[0].type"),
        ([{"type": "body_contains"}], "checks[0].value: required by a body_contains check"),
        ([{"type": "json_path_equals", "path": "$.a"}], "checks[0].value: required"),
        ([{"type": "json_path_exists"}], "checks[0].path: required"),
        ([{"type": "header_present"}], "checks[0].header: required"),
        ([{"type": "body_contains", "value": "x", "path": "$"}], "checks[0].path: unknown key"),
        ([{"type": "body_contains", "value": ""}], "checks[0].value: a non-empty string"),
        ([{"type": "body_contains", "value": 5}], "checks[0].value: a non-empty string"),
        ([{"type": "body_contains", "value": "x" * 2**20}], "at most 1000 characters"),
        ([{"type": "body_contains", "value": "a\0b"}], "NUL"),
        ([{"type": "json_path_exists", "path": "$.a[*]"}], "checks[0].path: Unexpected"),
        ([{"type": "json_path_equals", "path": "$.a", "value": math.nan}], "finite numbers"),
        ([{"type": "json_path_equals", "path": "$.a", "value": [math.inf]}], "finite numbers"),
        ([{"type": "json_path_equals", "path": "$", "value": "v" * 5000}], "as JSON"),
        ([{"type": "max_ms", "value": math.nan}], "checks[0].value: a number"),
        ([{"type": "max_ms", "value": True}], "checks[0].value: a number"),
        ([{"type": "max_ms", "value": "100"}], "checks[0].value: a number"),
        ([{"type": "max_ms", "value": -5}], "from more than 0"),
        ([{"type": "max_ms", "value": 1e300}], "up to 600000 ms"),
        ([{"type": "header_present", "header": "Bad Header"}], "checks[0].header"),
        ([{"type": "header_present", "header": "X-" + "a" * 300}], "checks[0].header"),
        ([{"type": "max_ms", "value": 1, "name": ""}], "checks[0].name: a non-empty"),
        ([{"type": "max_ms", "value": 1, "name": "n" * 61}], "at most 60 characters"),
        ([{"type": "max_ms", "value": 1, "name": "a\u202eb"}], "invisible"),
        ([{"type": "max_ms", "value": 1, "name": "a\nb"}], "control"),
        ([{"type": "max_ms", "value": 1, "name": "x"}, {"type": "max_ms", "value": 2,
          "name": "x"}], "checks[1].name: 'x' is used twice"),
        ([{"type": "max_ms", "value": 1}] * (CHECKS_MAX + 1), "at most 20 per endpoint"),
    ],
)  # fmt: skip
def test_bad_checks_are_refused_naming_the_index_and_key(checks, message):
    with pytest.raises(ValueError, match=None) as caught:
        parse_checks(checks)
    assert message in str(caught.value)


def test_a_deeply_nested_expected_value_is_refused_not_a_crash():
    deep: object = "x"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"checks\[0\]\.value"):
        parse_checks([{"type": "json_path_equals", "path": "$", "value": deep}])


def answer(body: bytes = b"", status: int = 200, headers=None, total: int | None = None):
    return Response(status, "OK", body, len(body) if total is None else total, headers)


def rules_for(*checks, statuses="200-399", limit=2**20) -> ResponseRules:
    return ResponseRules(statuses, list(checks), limit)


def test_each_check_type_passes_on_a_right_answer_and_names_itself_on_a_wrong_one():
    body = json.dumps({"status": "ok", "items": [{"id": 7}], "flag": True, "n": 1}).encode()
    cases = [
        ({"type": "body_contains", "value": '"ok"'}, b'{"status": "error"}'),
        ({"type": "body_not_contains", "value": "error"}, b'{"status": "error"}'),
        ({"type": "json_path_equals", "path": "$.items[0].id", "value": 7}, b'{"items": []}'),
        ({"type": "json_path_equals", "path": "$.n", "value": 1.0}, b'{"n": true}'),
        ({"type": "json_path_equals", "path": "$.flag", "value": True}, b'{"flag": 1}'),
        ({"type": "json_path_exists", "path": "$.items"}, b'{"item": 1}'),
        ({"type": "json_path_exists", "path": "$.status"}, b"<html>status</html>"),
    ]
    for check, wrong_body in cases:
        rules = rules_for({**check, "name": "the check"})
        assert rules.first_failure(answer(body), 1.0) is None, check
        failed = rules.first_failure(answer(wrong_body), 1.0)
        assert failed is not None and failed[0] == "the check", check


def test_header_and_time_checks():
    rules = rules_for({"type": "header_present", "header": "X-Trace"}, {"type": "max_ms",
                      "value": 50})  # fmt: skip
    assert rules.needs_headers and rules.body_limit == 0  # nothing reads the body
    assert rules.first_failure(answer(headers=frozenset({b"x-trace"})), 10.0) is None
    assert rules.first_failure(answer(headers=frozenset()), 10.0) == (
        "header_present",
        "no x-trace header",
    )
    assert rules.first_failure(answer(headers=frozenset({b"x-trace"})), 50.0) == (
        "max_ms",
        "answered in 50 ms, expected below 50 ms",
    )


def test_the_first_failing_check_is_the_one_reported():
    rules = rules_for(
        {"type": "body_contains", "value": "a", "name": "first"},
        {"type": "body_contains", "value": "b", "name": "second"},
    )
    assert rules.first_failure(answer(b"xyz"), 1.0)[0] == "first"
    assert rules.first_failure(answer(b"a"), 1.0)[0] == "second"


def test_a_body_longer_than_the_limit_is_not_json_and_hostile_bodies_do_not_crash():
    rules = rules_for({"type": "json_path_exists", "path": "$.a"}, limit=8)
    assert rules.body_limit == 8
    cut = answer(b'{"a": 1}', total=10_000)
    assert "not JSON" in rules.first_failure(cut, 1.0)[1]
    for hostile in (b"[" * 200_000, b"\xff\xfe", b'{"a": NaN', "ü".encode() * 10):
        failed = rules.first_failure(answer(hostile), 1.0)
        assert failed is not None and failed[0] == "json_path_exists"


def test_a_failure_message_never_quotes_the_body():
    rules = rules_for({"type": "json_path_equals", "path": "$.token", "value": "expected"})
    failed = rules.first_failure(answer(b'{"token": "s3cr3t-value"}'), 1.0)
    assert failed == ("json_path_equals", "$.token is not '\"expected\"'")
    assert "s3cr3t" not in failed[1]


def test_endpoints_without_checks_keep_the_fast_path():
    rules = rules_for()
    assert rules.checks == () and rules.body_limit == 0 and not rules.needs_headers
    assert rules.expected[200] and rules.expected[399] and not rules.expected[400]
