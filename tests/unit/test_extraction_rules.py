"""The extraction specs of flow steps: what the parser accepts and refuses (the control
plane's validator) and what each kind takes from an answer."""

import json
import time

import pytest

from apps.workers.extraction import (
    EXTRACTIONS_MAX,
    NOT_JSON,
    REGEX_TIMEOUT_S,
    VALUE_CHARS_MAX,
    TooSlow,
    parse_document,
    parse_extractions,
)
from apps.workers.http import Response


def answer(body: str | bytes, headers=None, cut=False) -> Response:
    raw = body.encode() if isinstance(body, str) else body
    return Response(200, "OK", raw, len(raw) + (1 if cut else 0), headers)


def values(spec, response):
    document = parse_document(response)
    return [item.value(response, document) for item in parse_extractions(spec)]


def test_json_path_takes_strings_as_they_are_and_other_values_as_json():
    body = json.dumps({"token": "abc", "n": 7, "ok": True, "list": [1, {"k": "ü"}]})
    spec = [
        {"name": "token", "json_path": "$.token"},
        {"name": "n", "json_path": "$.n"},
        {"name": "ok", "json_path": "$.ok"},
        {"name": "item", "json_path": "$.list[1]"},
        {"name": "missing", "json_path": "$.nope"},
    ]
    assert values(spec, answer(body)) == ["abc", "7", "true", '{"k":"ü"}', None]


def test_json_path_finds_nothing_in_a_body_that_is_not_json_or_was_cut():
    spec = [{"name": "token", "json_path": "$.token"}]
    assert values(spec, answer("<html>")) == [None]
    assert parse_document(answer('{"token": "a"}', cut=True)) is NOT_JSON


def test_regex_takes_its_group_or_the_whole_match():
    body = 'a <input name="csrf" value="f00d"> b'
    spec = [
        {"name": "with_group", "regex": 'value="([0-9a-f]+)"'},
        {"name": "whole", "regex": 'name="\\w+"'},
        {"name": "absent", "regex": "nothing here"},
    ]
    assert values(spec, answer(body)) == ["f00d", 'name="csrf"', None]


def test_a_regex_that_backtracks_catastrophically_gives_up_after_its_time():
    (extraction,) = parse_extractions([{"name": "token", "regex": "(a|aa)+$"}])
    response = answer("a" * 20_000 + "!")
    started = time.perf_counter()
    with pytest.raises(TooSlow, match=r"the regex \(a\|aa\)\+\$ took longer than 50 ms"):
        extraction.value(response, NOT_JSON)
    assert time.perf_counter() - started < REGEX_TIMEOUT_S + 2  # generous: a shared machine
    # The same pattern on an answer it can decide quickly finds its value.
    assert extraction.value(answer("xx aaaa"), NOT_JSON) == "a"


def test_header_reads_any_case_and_values_are_capped():
    long_value = b"x" * (VALUE_CHARS_MAX + 100)
    response = answer("", headers={b"x-token": b"t1", b"x-long": long_value})
    spec = [
        {"name": "token", "header": "X-Token"},
        {"name": "long", "header": "x-long"},
        {"name": "none", "header": "X-Absent"},
    ]
    token, long, none = values(spec, response)
    assert (token, len(long), none) == ("t1", VALUE_CHARS_MAX, None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("token", "extract: a list"),
        ([["token"]], "extract[0]: an object"),
        ([{"json_path": "$.a"}], "extract[0].name: a variable name"),
        ([{"name": "1abc", "json_path": "$.a"}], "extract[0].name: a variable name"),
        ([{"name": "ключ", "json_path": "$.a"}], "extract[0].name: a variable name"),
        ([{"name": "user_id", "json_path": "$.a"}], "'user_id' is reserved"),
        ([{"name": "feed", "json_path": "$.a"}], "'feed' is reserved"),
        ([{"name": "a"}], "extract[0]: exactly one of json_path, regex, header"),
        ([{"name": "a", "json_path": "$.a", "regex": "x"}], "exactly one of"),
        ([{"name": "a", "json_path": "$.a", "other": 1}], "extract[0].other: unknown key"),
        ([{"name": "a", "json_path": ""}], "extract[0].json_path: a non-empty string"),
        ([{"name": "a", "json_path": "a.b"}], 'extract[0].json_path: A JSON path starts with "$"'),
        ([{"name": "a", "regex": "("}], "extract[0].regex: not a regular expression"),
        ([{"name": "a", "regex": "(a)(b)"}], "at most one group"),
        ([{"name": "a", "regex": "x" * 501}], "at most 500 characters"),
        ([{"name": "a", "header": "Bad Header"}], "extract[0].header: a header name"),
        ([{"name": "a", "header": "X" * 10_000}], "extract[0].header: a header name"),
        ([{"name": "a", "json_path": 1e400}], "a non-empty string"),
        ([{"name": "a", "json_path": "$.a"}, {"name": "a", "regex": "x"}], "set twice"),
        ([{"name": f"v{i}", "header": "X"} for i in range(EXTRACTIONS_MAX + 1)], "at most 20"),
    ],
)
def test_bad_specs_are_refused_with_the_item_and_key(spec, message):
    with pytest.raises(ValueError, match=None) as refused:
        parse_extractions(spec)
    assert message in str(refused.value)


def test_no_spec_is_no_extraction():
    assert parse_extractions(None) == parse_extractions([]) == ()
