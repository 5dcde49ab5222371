"""Hostile input gets a clear 400, never a 500, and changes nothing.

The sweep posts hostile values (huge, negative, NaN and Infinity, unicode separators and
bidirectional marks, unpaired surrogates, JSON nested 100,000 deep, 1 MiB strings, wrong
types, null) to every writable field of every writable API endpoint, through the real views,
and checks that each is a 400 with a message and that no row was added or changed. The
fields come from the views' own serializers, so a new field is swept as soon as it exists;
a field of a kind the sweep has no hostile values for fails the test until it has some.
Bodies larger than MAX_REQUEST_BODY_BYTES are a 413 (documented in the README).
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.test import APIClient

from apps.sessions import validation
from apps.sessions.api.serializers.catalog import EndpointSerializer, TargetSerializer
from apps.sessions.api.serializers.sessions import LoadTestSessionSerializer
from apps.sessions.choices import SessionStatus
from apps.sessions.models import ConfigChange, Endpoint, LoadTestSession, Target

pytestmark = pytest.mark.django_db

# Raw JSON texts: NaN, Infinity and deep nesting cannot be written with json.dumps.
DEEP = "[" * 100_000 + "]" * 100_000
LONG_STRING = json.dumps("x" * (2**20 + 1))  # longer than any text field allows
LONE_SURROGATE = '"x\\ud800"'
NUL = json.dumps("a\x00b")
HUGE_INTS = [str(10**19), str(2**31), str(2**63)]
NOT_FINITE = ["NaN", "Infinity", "-Infinity"]
LINE_BREAKERS = [json.dumps("a\u2028b"), json.dumps("\u202eevil"), json.dumps("a\u200fb")]
EVERY_KIND = [DEEP, LONE_SURROGATE]

HOSTILE_BY_KIND = {
    "integer": [*HUGE_INTS, "-1", "1.5", '"many"', "[]", "{}", "true", *NOT_FINITE],
    "float": [*HUGE_INTS, "1e308", "1e309", "-1", '"fast"', "[]", "{}", *NOT_FINITE],
    "decimal": [*HUGE_INTS, "1e308", "-1", '"long"', "[]", "{}", *NOT_FINITE],
    "boolean": [*HUGE_INTS, "2", '"maybe"', "[]", "{}", *NOT_FINITE],
    "choice": ['"FETCH"', '""', '"GET\\r\\n"', *HUGE_INTS, "[]", "{}", LONG_STRING],
    "text": [LONG_STRING, NUL, "[]", "{}", "true"],
    "json": ['"word"', "[]", "5", "true", '{"x": NaN}', '{"x": "\\udfff"}'],
    "related": [*HUGE_INTS, "-1", "0", "1.5", '"x"', "[]", "{}", "true"],
}
# Text fields whose validators refuse separators and bidirectional marks (names, URLs,
# descriptions); a body is sent as written, so those characters are fine there.
LINE_CHECKS = {
    validation.check_single_line,
    validation.check_text,
    validation.check_target_url,
    validation.check_endpoint_url,
}
# Beyond the kind's values: what only this field can get wrong.
FIELD_EXTRAS = {
    "tags": [
        json.dumps([f"t{i}" for i in range(11)]),
        json.dumps(["x" * 2**20]),
        json.dumps(["two words"]),
        json.dumps(["</script><script>alert(1)</script>"]),
        json.dumps(["a\u200bb"]),
        json.dumps(["\u202eabc"]),
        json.dumps(["Prod", "prod"]),
        json.dumps([""]),
        json.dumps([1]),
        json.dumps([{"a": 1}]),
    ],
    "headers": [
        json.dumps({f"X-H{i}": "v" for i in range(5000)}),
        json.dumps({"X-Big": "v" * 2**20}),
        json.dumps({"X-Snow": "\u2603"}),
        json.dumps({"X-Line": "a\u2028b"}),
        json.dumps({"X-Rtl": "\u202eabc"}),
        json.dumps({"X-Crlf": "a\r\nSet-Cookie: x=1"}),
        json.dumps({"Bad Name": "v"}),
        json.dumps({"Content-Length": "5"}),
        json.dumps({"Host": "evil.example"}),
        json.dumps({"Host": "localhost:6379"}),
        json.dumps({"X-Num": 10**19}),
    ],
    "endpoint_weights": [
        '{"slow": 1e308}',
        '{"slow": 1e309}',
        json.dumps({"slow": 10**19}),
        '{"slow": -1}',
        '{"slow": "1"}',
        '{"slow": NaN}',
        '{"slow": null}',
        '{"slow": 0}',
        '{"nope": 1}',
        json.dumps({f"n{i}": 1 for i in range(5000)}),
    ],
    "thresholds": [
        '["p95_ms < NaN"]',
        '["p95_ms < 1e309"]',
        "[1]",
        "[null]",
        "[[]]",
        '{"p95_ms": 1}',
        json.dumps(["x" * 2**20]),
        json.dumps(["p95_ms < 1"] * 5000),
        json.dumps(["\u202ep95_ms < 1"]),
        json.dumps(["p95_ms < 1\nabort"]),
        json.dumps(["nope: p95_ms < 1"]),
        json.dumps(["p95_ms < \u0661"]),
    ],
    "base_url": [
        json.dumps("http://localhost:6379/"),
        json.dumps("https://127.0.0.1:5432/"),
        json.dumps("http://127.0.0.1:5002/#/api"),
        json.dumps("http://127.0.0.1:5002#"),
    ],
    "expected_statuses": [
        json.dumps(spec)
        for spec in (
            "600",
            "99",
            "404,200",
            "2OO",
            "",
            "200-",
            "\uff12\uff10\uff10",
            "200," * 100,
            "1e3",
            "-1",
        )
    ],
    "checks": [
        '[{"type": "max_ms", "value": NaN}]',
        '[{"type": "max_ms", "value": 1e309}]',
        '[{"type": "json_path_equals", "path": "$.a", "value": NaN}]',
        '[{"type": "eval", "value": "x"}]',
        '[{"type": "json_path_exists", "path": "$..a[?(@.x)]"}]',
        '[{"type": "body_contains", "value": "x", "extra": 1}]',
        json.dumps([{"type": "body_contains", "value": "x" * 2**20}]),
        json.dumps([{"type": "max_ms", "value": 1}] * 5000),
        json.dumps([{"type": "max_ms", "value": 1, "name": "\u202eevil"}]),
        json.dumps([{"type": "header_present", "header": "a\r\nb"}]),
        "[" * 60 + "]" * 60,
        '{"type": "max_ms", "value": 1}',
    ],
    "url": [
        json.dumps("http://localhost:6379/x"),
        json.dumps("/a\r\nHost: evil"),
        json.dumps("/#/orders"),
        json.dumps("http://127.0.0.1:5001/a#b"),
    ],
}


def kind_of(field: serializers.Field) -> str:
    for field_class, kind in (
        (serializers.BooleanField, "boolean"),
        (serializers.IntegerField, "integer"),
        (serializers.FloatField, "float"),
        (serializers.DecimalField, "decimal"),
        (serializers.ChoiceField, "choice"),
        (serializers.CharField, "text"),
        (serializers.JSONField, "json"),
        (serializers.RelatedField, "related"),
    ):
        if isinstance(field, field_class):
            return kind
    raise AssertionError(f"No hostile values for {type(field).__name__}: add them to the sweep.")


# What a kind's hostile values hold that is this field's right shape.
FIELD_ACCEPTS = {"thresholds": {"[]"}, "tags": {"[]"}, "checks": {"[]"}}


def hostile_values(name: str, field: serializers.Field) -> list[str]:
    values = [*HOSTILE_BY_KIND[kind_of(field)], *EVERY_KIND, *FIELD_EXTRAS.get(name, [])]
    values = [value for value in values if value not in FIELD_ACCEPTS.get(name, ())]
    if any(check in field.validators for check in LINE_CHECKS):
        values += LINE_BREAKERS
    if not field.allow_null:
        values.append("null")
    return values


def writable_fields(serializer_class) -> dict[str, serializers.Field]:
    return {
        name: field
        for name, field in serializer_class().fields.items()
        if not field.read_only and name != "id"
    }


def body_with(base: dict, name: str, raw_value: str) -> str:
    """``base`` as JSON, with ``name`` set to the raw JSON text ``raw_value``."""
    others = json.dumps({key: value for key, value in base.items() if key != name})
    return f'{others[:-1]}{", " if len(others) > 2 else ""}"{name}": {raw_value}}}'


def database_state() -> dict:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Target, Endpoint, LoadTestSession, ConfigChange)
    }


def short(raw: str) -> str:
    return raw if len(raw) < 60 else f"{raw[:40]}... ({len(raw):,} chars)"


@pytest.fixture
def catalog(db):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    endpoint = Endpoint.objects.create(target=target, name="slow", url="/performance/slow")
    pending = LoadTestSession.objects.create(session_name="pending", target=target)
    running = LoadTestSession.objects.create(
        session_name="running", target=target, status=SessionStatus.RUNNING
    )
    return {"target": target, "endpoint": endpoint, "pending": pending, "running": running}


@pytest.fixture(autouse=True)
def production_allow_list(settings):
    """Ports matter here: localhost:6379 must be refused, as it is outside tests."""
    settings.ALLOWED_TARGET_HOSTS = ["localhost:5001", "127.0.0.1:5001", "127.0.0.1:5002"]


def sweep(client: APIClient, method: str, path: str, fields: dict, base: dict) -> list[str]:
    """Every hostile value of every field in turn; returns what was not refused cleanly."""
    problems = []
    for name, field in fields.items():
        for raw_value in hostile_values(name, field):
            before = database_state()
            response = client.generic(
                method, path, body_with(base, name, raw_value), content_type="application/json"
            )
            said = response.json() if response.status_code < 500 else None
            if response.status_code != 400 or not said:
                problems.append(
                    f"{method} {path} {name}={short(raw_value)}: {response.status_code} "
                    f"{response.content[:200]!r}"
                )
            elif database_state() != before:
                problems.append(f"{method} {path} {name}={short(raw_value)}: stored something")
    return problems


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_targets_refuse_hostile_values(admin_api, catalog, method):
    target = catalog["target"]
    path = "/api/targets/" if method == "POST" else f"/api/targets/{target.pk}/"
    base = {"name": "new", "base_url": "http://127.0.0.1:5002", "description": "d"}
    base = {} if method == "PATCH" else base
    assert sweep(admin_api, method, path, writable_fields(TargetSerializer), base) == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_endpoints_refuse_hostile_values(admin_api, catalog, method):
    endpoint = catalog["endpoint"]
    path = "/api/endpoints/" if method == "POST" else f"/api/endpoints/{endpoint.pk}/"
    base = {"target": catalog["target"].pk, "name": "new", "url": "/new", "method": "POST",
            "weight": 2, "timeout": 5, "headers": {"X-A": "1"}, "body": "b"}  # fmt: skip
    base = {} if method == "PATCH" else base
    assert sweep(admin_api, method, path, writable_fields(EndpointSerializer), base) == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_sessions_refuse_hostile_values(api, catalog, method):
    session = catalog["pending"]
    path = "/api/sessions/" if method == "POST" else f"/api/sessions/{session.pk}/"
    base = {"session_name": "new", "target": catalog["target"].pk, "concurrent_users": 2,
            "duration_minutes": "1", "request_interval_min": 0.5, "request_interval_max": 1,
            "endpoint_weights": {"slow": 1}, "max_errors_per_minute": 10,
            "enable_logging": False, "target_rps": None, "ramp_up_seconds": 0}  # fmt: skip
    base = {} if method == "PATCH" else base
    fields = writable_fields(LoadTestSessionSerializer)
    assert sweep(api, method, path, fields, {k: v for k, v in base.items() if k in fields}) == []


def test_a_running_session_refuses_hostile_user_counts(api, catalog):
    """The live PATCH (concurrent_users only) validates before anything reaches Redis."""
    path = f"/api/sessions/{catalog['running'].pk}/"
    field = LoadTestSessionSerializer().fields["concurrent_users"]
    assert sweep(api, "PATCH", path, {"concurrent_users": field}, {}) == []


def test_the_token_endpoint_refuses_hostile_values(client, catalog):
    get_user_model().objects.create_user("ada", password="ada-pw-42")
    fields = {name: field for name, field in AuthTokenSerializer().fields.items()
              if not field.read_only}  # fmt: skip
    assert set(fields) == {"username", "password"}
    anonymous = APIClient()
    base = {"username": "ada", "password": "x"}
    assert sweep(anonymous, "POST", "/api/auth/token/", fields, base) == []


@pytest.mark.parametrize("action", ["start", "stop", "clone", "history", "stats", "timeseries",
                                    "errors", "export", ""])  # fmt: skip
def test_actions_on_hostile_session_ids_are_not_found(api, catalog, action):
    before = database_state()
    methods = ["POST"] if action in ("start", "stop", "clone") else ["GET"]
    if not action:
        methods = ["GET", "PUT", "PATCH", "DELETE"]
    for session_id in (str(10**19), str(2**63), "-1", "0", "x", "1e3"):
        path = f"/api/sessions/{session_id}/{action + '/' if action else ''}"
        for method in methods:
            response = api.generic(method, path, "{}", content_type="application/json")
            assert response.status_code == 404, (method, path, response.content[:200])
    assert database_state() == before


# --- bodies as a whole -----------------------------------------------------------------------


def test_a_body_over_the_cap_is_a_413_naming_it(api, catalog, settings):
    before = database_state()
    body = json.dumps({"session_name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = api.generic("POST", "/api/sessions/", body, content_type="application/json")
    assert response.status_code == 413
    assert "MAX_REQUEST_BODY_BYTES" in response.json()["detail"]
    assert database_state() == before


@pytest.mark.parametrize("body", ["[]", "[{}]", "5", "null", '"x"', DEEP, "{" * 50_000, "\x00",
                                  '{"session_name": "a"', b"\xff\xfe{}"])  # fmt: skip
def test_bodies_that_are_no_json_object_are_refused(api, admin_api, catalog, body):
    before = database_state()
    for client, method, path in [
        (api, "POST", "/api/sessions/"),
        (api, "PATCH", f"/api/sessions/{catalog['pending'].pk}/"),
        (api, "PATCH", f"/api/sessions/{catalog['running'].pk}/"),
        (admin_api, "PUT", f"/api/endpoints/{catalog['endpoint'].pk}/"),
        (admin_api, "POST", "/api/targets/"),
        (APIClient(), "POST", "/api/auth/token/"),
    ]:
        response = client.generic(method, path, body, content_type="application/json")
        assert response.status_code == 400, (method, path, response.content[:200])
        assert response.json()
    assert database_state() == before


def test_deep_json_in_a_form_field_is_refused(admin_api, catalog):
    """Form posts carry JSON fields as text, parsed by the field: bounded too."""
    before = database_state()
    data = {"target": catalog["target"].pk, "name": "n", "url": "/x", "headers": DEEP}
    response = admin_api.post("/api/endpoints/", data)  # multipart
    assert response.status_code == 400
    assert "headers" in response.json()
    assert database_state() == before


def test_a_form_body_over_the_cap_is_refused(admin_api, catalog, settings):
    before = database_state()
    body = "base_url=http%3A%2F%2Flocalhost&name=" + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = admin_api.generic(
        "POST", "/api/targets/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert "MAX_REQUEST_BODY_BYTES" in response.json()["detail"]
    assert database_state() == before


# --- query parameters --------------------------------------------------------------------------


def refused_parameters(client, cases) -> list[str]:
    """(path, field) pairs not answered with a 400 naming ``field``."""
    problems = []
    for path, field in cases:
        response = client.get(path)
        if response.status_code != 400 or field not in response.json():
            problems.append(f"{path}: {response.status_code} {response.content[:200]!r}")
    return problems


def test_bad_timeseries_parameters_are_a_400_naming_them(viewer_api, catalog):
    path = f"/api/sessions/{catalog['pending'].pk}/timeseries/?"
    cases = [
        ("since=0001-01-01T00:00:00%2B01:00", "since"),  # an OverflowError (500) before
        ("since=9999-12-31T23:00:00-05:00", "since"),
        ("since=yesterday", "since"),
        ("since=2025-13-01T00:00:00Z", "since"),
        ("page=abc", "page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=1e3", "page"),
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=10001", "page_size"),
        (f"page_size={10**19}", "page_size"),
    ]
    assert refused_parameters(viewer_api, [(path + query, field) for query, field in cases]) == []


def test_bad_list_parameters_are_a_400_naming_them(viewer_api, catalog):
    cases = [
        ("/api/sessions/?ordering=nope", "ordering"),
        ("/api/sessions/?ordering=-created_at,plan", "ordering"),
        ("/api/sessions/?page=abc", "page"),
        (f"/api/sessions/?target={10**19}", "target"),
        (f"/api/sessions/?created_by={2**63}", "created_by"),
        ("/api/sessions/?status=nope", "status"),
        (f"/api/endpoints/?target={10**19}", "target"),
        ("/api/endpoints/?target=x", "target"),
        ("/api/endpoints/?ordering=headers", "ordering"),
        ("/api/targets/?ordering=base_url", "ordering"),
    ]
    assert refused_parameters(viewer_api, cases) == []


def test_odd_but_harmless_parameters_never_fail(admin_api, catalog):
    for path, status in [
        ("/api/sessions/?page=99999999999999999999", 404),  # past the end, as DRF answers
        ("/api/sessions/?search=%E2%80%A8%E2%80%AE", 200),
        (f"/api/audit/?status_code={10**23}", 200),
        ("/api/sessions/?ordering=-created_at,,status", 200),
        (f"/api/sessions/{catalog['pending'].pk}/timeseries/?since=2025-01-01T00:00:00", 200),
    ]:
        assert admin_api.get(path).status_code == status, path


# --- the admin refuses the same ------------------------------------------------------------

ADMIN_CASES = {
    "loadtestsession": (
        LoadTestSession,
        {"session_name": "ok", "concurrent_users": 10, "duration_minutes": "1",
         "request_interval_min": 1, "request_interval_max": 2, "endpoint_weights": "{}",
         "max_errors_per_minute": 100, "ramp_up_seconds": 0, "enable_logging": "on",
         "endpoint_stats-TOTAL_FORMS": 0, "endpoint_stats-INITIAL_FORMS": 0,
         "events-TOTAL_FORMS": 0, "events-INITIAL_FORMS": 0},
        [("max_errors_per_minute", str(10**19)), ("max_errors_per_minute", str(2**31)),
         ("endpoint_weights", DEEP), ("endpoint_weights", '{"slow": 1e308}'),
         ("endpoint_weights", '{"slow": NaN}'), ("endpoint_weights", '{"x": "\\ud800"}'),
         ("session_name", "a\u2028b"), ("session_name", "\u202eevil"),
         ("request_interval_max", "1e308"), ("duration_minutes", "1e308"),
         ("ramp_up_seconds", str(10**19)), ("target_rps", "NaN")],
    ),
    "endpoint": (
        Endpoint,
        {"name": "new", "url": "/new", "method": "GET", "weight": 1, "timeout_s": 5,
         "description": "", "headers": "{}", "body": "", "expected_statuses": "200-399",
         "checks": "[]"},
        [("headers", DEEP), ("headers", json.dumps({"X-Snow": "\u2603"})),
         ("headers", json.dumps({"Host": "evil.example"})),
         ("headers", json.dumps({f"X-H{i}": "v" for i in range(51)})),
         ("weight", "1e308"), ("weight", "NaN"), ("timeout_s", str(10**19)),
         ("url", "/a\u2028b"), ("url", "http://localhost:6379/"), ("body", "x" * (2**20 + 1)),
         ("url", "/#/orders"),
         ("description", "d" * 2001), ("name", "\u202eevil"),
         ("expected_statuses", "404,200"), ("expected_statuses", "600"),
         ("checks", '[{"type": "max_ms", "value": NaN}]'), ("checks", DEEP),
         ("checks", '[{"type": "body_contains"}]'), ("checks", '{"type": "max_ms"}')],
    ),
    "target": (
        Target,
        {"name": "t2", "base_url": "http://127.0.0.1:5002", "description": "",
         "endpoints-TOTAL_FORMS": 0, "endpoints-INITIAL_FORMS": 0},
        [("base_url", "http://localhost:6379/"), ("base_url", "https://127.0.0.1:5432/"),
         ("base_url", "http://127.0.0.1:5002/#/api"),
         ("name", "a\u2028b"), ("description", "\u202e")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("model_name", list(ADMIN_CASES))
def test_the_admin_refuses_the_same_values(superuser_client, catalog, model_name):
    model, base, cases = ADMIN_CASES[model_name]
    if model is not Target:
        base = {**base, "target": catalog["target"].pk}
    problems = []
    for field, value in cases:
        before = database_state()
        response = superuser_client.post(
            reverse(f"admin:loadtests_{model_name}_add"), {**base, field: value}
        )
        form = response.context["adminform"].form if response.status_code == 200 else None
        if form is None or field not in form.errors:
            problems.append(f"{model_name}.{field}={short(value)}: {response.status_code}")
        elif database_state() != before:
            problems.append(f"{model_name}.{field}={short(value)}: stored something")
    assert problems == []
    # The base itself is valid: the refusals above came from the hostile values.
    response = superuser_client.post(reverse(f"admin:loadtests_{model_name}_add"), base)
    assert response.status_code == 302, response.context["adminform"].form.errors
