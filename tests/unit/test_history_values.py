"""The configuration history's values as text people read (``config_history.readable``):
weights, lists and nested values in words, never a Python or JSON repr, and hostile values
(unicode, control and direction characters, huge, deeply nested) shown bounded and inert."""

import json

import pytest

from apps.sessions.access.config_history import (
    VALUE_ITEMS_SHOWN,
    VALUE_TEXT_CHARS,
    history_of,
    readable,
)
from apps.sessions.api.serializers.access import ConfigChangeSerializer
from apps.sessions.models import ConfigChange, LoadTestSession, Target

from ..support.forms import browser_for


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"checkout": 2.0, "browse": 1}, "checkout 2, browse 1"),
        ({"a": 0.25}, "a 0.25"),
        ({}, "(none)"),
        ([], "(none)"),
        (None, "(none)"),
        ("", "(empty)"),
        (True, "yes"),
        (False, "no"),
        (7, "7"),
        ("0.5000", "0.5000"),  # a decimal as stored: its digits, not a float's
        (["nightly", "release-2.4"], "nightly, release-2.4"),
        ({"Authorization": "[REDACTED] #1a2b3c4d"}, "Authorization: [REDACTED] #1a2b3c4d"),
        (
            [{"endpoint": 3, "endpoint_name": "login", "extract": []}],
            "(endpoint: 3, endpoint_name: login, extract: (none))",
        ),
        ([[1, 2], [3]], "[1, 2]; [3]"),
        (float("inf"), "inf"),
        (1e300, "1e+300"),
    ],
)
def test_values_read_as_words(value, text):
    assert readable(value) == text


def test_no_value_reads_as_a_python_or_json_repr():
    value = {"fast": 1.0, "slow": 3.0, "tags": ["a"], "on": True, "off": None}
    text = readable(value)
    assert text == "fast: 1, slow: 3, tags: [a], on: yes, off: (none)"
    for repr_text in (repr(value), json.dumps(value), "{", "'", '"', "True", "None"):
        assert repr_text not in text


def test_unicode_is_kept_and_control_and_direction_characters_are_escaped():
    assert readable({"café ☕": 1, "日本": 2}) == "café ☕ 1, 日本 2"
    assert readable("👩‍💻 ok") == "👩‍💻 ok"  # a joiner inside an emoji stays
    shown = readable("line\nbreak\x00\u202eevil")
    assert "\n" not in shown and "\x00" not in shown and "\u202e" not in shown
    assert shown == "line\\nbreak\\x00\\u202eevil"


def test_huge_values_are_cut_and_say_how_much_is_left_out():
    huge = "x" * 1_000_000
    shown = readable(huge)
    assert len(shown) < VALUE_TEXT_CHARS + 60
    assert shown.endswith("more characters)")
    many = {f"endpoint-{n}": n for n in range(10_000)}
    text = readable(many)
    assert text.startswith("endpoint-0 0, endpoint-1 1")
    assert len(text) < VALUE_TEXT_CHARS + 60
    listed = readable(list(range(VALUE_ITEMS_SHOWN + 7)))
    assert listed.endswith(f"{VALUE_ITEMS_SHOWN - 1}, … 7 more")
    assert readable(10**5000) == "a number of 16,610 bits"  # past Python's int -> str limit


def test_deep_nesting_is_cut_not_recursed_forever():
    deep: object = "bottom"
    for level in range(10_000):
        deep = {f"k{level}": deep} if level % 2 else [deep]
    text = readable(deep)
    assert "…" in text and "bottom" not in text
    assert len(text) < 200


@pytest.fixture
def weights_change(db):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    session = LoadTestSession.objects.create(session_name="nightly", target=target)
    ConfigChange.objects.create(
        object_type="session", object_id=session.pk, object_repr="nightly",
        field="endpoint_weights", old_value={"checkout": 1.0},
        # Keys in jsonb's order (shorter first): PostgreSQL gives them back in that order
        # whatever the order written, SQLite as written; the text follows the stored order.
        new_value={"browse": 1.0, "checkout": 2.0, "naïve <b>": 0.5}, via="page",
    )  # fmt: skip
    return session


def test_the_api_gives_the_text_beside_the_stored_json(weights_change):
    data = ConfigChangeSerializer(history_of(weights_change).get()).data
    assert data["old_value"] == {"checkout": 1.0}  # the stored JSON, as before
    assert data["new_value"] == {"browse": 1.0, "checkout": 2.0, "naïve <b>": 0.5}
    assert (data["old_text"], data["new_text"], data["via"]) == (
        "checkout 1",
        "browse 1, checkout 2, naïve <b> 0.5",
        "page",
    )


def test_the_session_page_and_the_admin_show_the_text(weights_change, viewer, superuser_client):
    page = browser_for(viewer).get(f"/sessions/{weights_change.pk}/").content.decode()
    assert "browse 1, checkout 2, naïve &lt;b&gt; 0.5" in page  # escaped, as any text
    assert "{&#x27;checkout&#x27;" not in page and "{'checkout'" not in page
    listed = superuser_client.get("/admin/loadtests/configchange/").content.decode()
    assert "browse 1, checkout 2, naïve &lt;b&gt; 0.5" in listed
    assert "{&#x27;checkout&#x27;" not in listed
