"""Request templates render what they say, refuse what they cannot mean, and build valid HTTP.

Pure tests of ``apps.workers.templating`` and ``templated_requests`` (no network): every
function's values over many renders, per-user sequences, feed columns and flow variables;
every error with the character it points at; hostile input (megabytes, NUL, unicode, deep
parentheses, huge numbers) refused with a TemplateError, never another exception; and the
request bytes parsed by httptools (the parser of uvicorn), with a right Content-Length and no
way for a value to add a header.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httptools
import pytest

from apps.workers.http import PreparedRequest, prepare
from apps.workers.plan import EndpointPlan
from apps.workers.templated_requests import TemplatedRequest, compile_request
from apps.workers.templating import (
    MAX_PLACEHOLDERS,
    MAX_TEMPLATE_CHARS,
    TemplateError,
    parse_template,
)
from apps.workers.userstate import UserState

RENDERS = 2000
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01\Z")


def render(text: str, user: UserState | None = None, columns=None) -> str:
    return parse_template(text, columns=columns).render(user or UserState(1))


# --- values ------------------------------------------------------------------------------------


def test_random_int_covers_its_inclusive_range_and_nothing_else():
    template = parse_template("{{ random_int(1, 5) }}")
    values = {int(template.render(UserState(1))) for _ in range(RENDERS)}
    assert values == {1, 2, 3, 4, 5}


def test_random_int_with_negative_and_huge_bounds():
    values = {int(render("{{ random_int(-3, -1) }}")) for _ in range(500)}
    assert values == {-3, -2, -1}
    limit = 2**63 - 1
    for _ in range(200):
        assert -limit <= int(render(f"{{{{ random_int(-{limit}, {limit}) }}}}")) <= limit
    assert render("{{ random_int(7, 7) }}") == "7"


def test_choice_renders_only_its_members_strings_and_numbers_as_written():
    template = parse_template("""{{ choice("alice", 'bob', 3, 1.50) }}""")
    values = {template.render(UserState(1)) for _ in range(RENDERS)}
    assert values == {"alice", "bob", "3", "1.50"}


def test_uuid_is_a_random_version_4_uuid():
    values = [render("{{ uuid() }}") for _ in range(RENDERS)]
    assert all(UUID4.match(value) for value in values)
    assert len(set(values)) == RENDERS


def test_seq_counts_per_user_across_calls_and_templates():
    alice, bob = UserState(1), UserState(2)
    template = parse_template("{{ seq() }},{{ seq() }}")
    assert template.render(alice) == "1,2"
    assert template.render(alice) == "3,4"
    assert template.render(bob) == "1,2"
    assert parse_template("n={{seq()}}").render(alice) == "n=5"


def test_now_iso_is_utc_with_milliseconds():
    value = render("{{ now_iso() }}")
    assert ISO_MS.match(value), value
    when = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - when) < timedelta(seconds=5)


def test_random_string_has_its_length_in_letters_and_digits():
    for length in (1, 17, 1000):
        value = render(f"{{{{ random_string({length}) }}}}")
        assert len(value) == length
        assert re.fullmatch(r"[A-Za-z0-9]+", value)
    assert len({render("{{ random_string(12) }}") for _ in range(100)}) == 100


def test_user_id_feed_columns_and_variables():
    user = UserState(42)
    user.row = ("ann@example.com", "Ann")
    user.variables = {"token": "t0k"}
    template = parse_template(
        "{{user_id}} {{ feed.name }} <{{ feed.email }}> {{ token }} [{{ missing }}]",
        columns=("email", "name"),
    )
    assert template.render(user) == "42 Ann <ann@example.com> t0k []"
    assert template.variables == frozenset({"token", "missing"})
    assert template.columns == frozenset({"email", "name"})
    assert not template.constant
    bare = UserState(1)  # no row yet, no variables yet: empty values, not an exception
    assert template.render(bare) == "1  <>  []"


def test_literals_constants_and_escapes():
    template = parse_template(
        """a {{ "{{" }} b {{ '}}' }} {{ "q\\"\\\\" }} {{ 12 }} {"x": {"y": 1}}"""
    )
    assert template.constant
    assert template.render(UserState(1)) == 'a {{ b }} q"\\ 12 {"x": {"y": 1}}'
    assert parse_template("no placeholders").constant
    assert parse_template("").render(UserState(1)) == ""


def test_unicode_survives_in_literals_and_strings():
    assert render("☃ {{ choice('ünï', \"日本\") }} ☃") in ("☃ ünï ☃", "☃ 日本 ☃")


def test_variables_and_columns_of_a_parsed_template():
    template = parse_template("{{ a }}{{ feed.c }}{{ b }}{{ uuid() }}{{ user_id }}")
    assert template.variables == frozenset({"a", "b"})
    assert template.columns == frozenset({"c"})


# --- errors, with their positions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("/x/{{ rand(1) }}", 6, "unknown function 'rand'; use random_int, choice, uuid"),
        ("{{ random_int(5, 1) }}", 14, "a <= b"),
        ("{{ random_int(1) }}", 15, "two integers"),
        ("{{ random_int(1.5, 2) }}", 14, "integers"),
        ("{{ random_int(1, " + "9" * 100 + ") }}", 17, "at most 40 characters"),
        ("{{ random_int(1, 99999999999999999999) }}", 17, "between"),
        ("{{ 1e400 }}", 3, "no exponent"),
        ("{{ choice() }}", 10, "1 to 100 values"),
        ("{{ choice(" + ", ".join(["1"] * 101) + ") }}", 10 + 3 * 100, "at most 100"),
        ("{{ choice(a) }}", 10, "literal numbers or strings"),
        ("{{ choice(uuid()) }}", 10, "no nested calls"),
        ("{{ uuid(1) }}", 8, "takes no arguments"),
        ("{{ seq }}", 3, "write seq()"),
        ("{{ random_string(0) }}", 17, "between 1 and 1000"),
        ("{{ random_string(1001) }}", 17, "between 1 and 1000"),
        ("ab {{", 3, "not closed"),
        ("{{ uuid() ", 0, "not closed"),
        ("{{ 'abc }}", 3, "not closed by '"),
        ("{{ 'a\\n' }}", 5, "backslash"),
        ("{{ }}", 3, "empty"),
        ("{{ a b }}", 5, "expected '}}'"),
        ("{{ 1 2 }}", 5, "expected '}}'"),
        ("{{ user.name }}", 3, "only feed.<column>"),
        ("{{ feed }}", 3, "feed.<column>"),
        ("{{ feed.1 }}", 8, "column name"),
        ("{{ ((((((((((1)))))))))) }}", 3, "unexpected '('"),
        ("{{ uuid() + 1 }}", 10, "no operators"),
        ("{{ \x00 }}", 3, "U+0000"),
        ("{{ é }}", 3, "'é'"),
        ("{{ -a }}", 3, "'-' must start a number"),
        ("{{ " + "a" * 101 + " }}", 3, "at most 100 characters"),
    ],
)
def test_errors_name_the_character_and_what_is_allowed(text, position, words):
    with pytest.raises(TemplateError) as caught:
        parse_template(text)
    assert caught.value.position == position, str(caught.value)
    assert words in caught.value.message
    assert str(caught.value).startswith(f"at character {position}: ")
    assert isinstance(caught.value, ValueError)


def test_unknown_function_message_is_the_documented_one():
    with pytest.raises(TemplateError) as caught:
        parse_template("/users/{{ rand(1, 5) }}")
    assert str(caught.value) == (
        "at character 10: unknown function 'rand'; use random_int, choice, uuid, seq, "
        "now_iso, random_string"
    )


def test_a_column_the_feed_lacks_is_refused_when_columns_are_given():
    with pytest.raises(TemplateError) as caught:
        parse_template("x{{ feed.mail }}", columns=("email",))
    assert caught.value.position == 1
    assert "no such column (it has email)" in caught.value.message
    with pytest.raises(TemplateError, match="has no data feed"):
        parse_template("{{ feed.email }}", columns=())


# --- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{{" * 500_000,
        "{{ " + "(" * 100_000,
        "{{ '" + "x" * 1_000_000,
        "{{ " + "9" * 1_000_000 + " }}",
        "{{ " + "a" * 1_000_000 + " }}",
        "{{ choice(" + "'a'," * 200_000 + ") }}",
        "{{ uuid() }}" * (MAX_PLACEHOLDERS + 1),
        "x" * (MAX_TEMPLATE_CHARS + 1),
        "{{ \ud800 }}",
        "{{ \u202e }}",
        "{{\n\x00\n}}",
        "{{ random_int(-" + "9" * 30 + ", 1) }}",
        "{{ random_int(0, 0x10) }}",
        "{{ feed.a.b }}",
        "{{ 'a' 'b' }}",
        "{{ choice('a',,) }}",
        "{{ choice('a' }}",
        "{{ nan }}x{{ inf( }}",
    ],
)
def test_hostile_templates_get_a_template_error_with_a_position(text):
    with pytest.raises(TemplateError) as caught:
        parse_template(text)
    assert 0 <= caught.value.position <= len(text)


def test_a_megabyte_of_literal_text_and_many_placeholders_are_fine():
    text = "é" * (MAX_TEMPLATE_CHARS - 20) + "{{ seq() }}"
    assert parse_template(text).render(UserState(1)).endswith("é1")
    many = parse_template("{{ seq() }}," * MAX_PLACEHOLDERS)
    assert many.render(UserState(1)).split(",")[-2] == str(MAX_PLACEHOLDERS)
    nested_json = '{"a": ' * 1000 + "{{ uuid() }}" + "}" * 1000
    assert parse_template(nested_json).render(UserState(1)).endswith("}}}")


# --- requests ----------------------------------------------------------------------------------


class ParsedRequest:
    """A request as a server reads it (httptools): the target, headers in order, the body."""

    def __init__(self, raw: bytes) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.complete = False
        parser = httptools.HttpRequestParser(self)
        parser.feed_data(raw)
        self.method = parser.get_method().decode()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True

    def header(self, name: str) -> str:
        values = [value for key, value in self.headers if key == name]
        assert len(values) == 1, self.headers
        return values[0]


def endpoint(url: str, headers=None, body: str = "", method: str = "POST") -> EndpointPlan:
    return EndpointPlan("e", method, url, 5.0, 1.0, headers or {}, body)


def test_a_fixed_endpoint_compiles_to_the_ordinary_prepared_request():
    fixed = endpoint("http://127.0.0.1:8000/items/1?q=a", {"X-A": "1"}, '{"a": {"b": 1}}')
    compiled = compile_request(fixed, default_headers={"X-S": "7"}, traceparent=True)
    assert type(compiled) is PreparedRequest
    assert compiled == prepare(
        "POST",
        fixed.url,
        fixed.headers,
        fixed.body,
        default_headers={"X-S": "7"},
        traceparent=True,
    )
    literal = compile_request(endpoint('http://h/a{{ "{{" }}b'))
    assert type(literal) is PreparedRequest
    assert literal.raw.startswith(b"POST /a%7B%7Bb HTTP/1.1")


def test_templated_request_is_valid_http_with_the_right_length_and_values():
    plan = endpoint(
        'http://127.0.0.1:8000/items/{{ random_int(1, 5000) }}?q={{ choice("a","b","c") }}',
        {"X-Request": "n-{{ seq() }}", "Content-Type": "application/json"},
        '{"id": "{{ uuid() }}", "user": {{ user_id }}, "name": "{{ feed.name }}"}',
    )
    compiled = compile_request(plan, default_headers={"X-Session": "9"}, columns=("name",))
    assert isinstance(compiled, TemplatedRequest)
    assert compiled.prepared.pool_key == ("http", "127.0.0.1", 8000)
    assert not compiled.prepared.is_head
    user = UserState(12)
    user.row = ("Zoë",)
    seen_ids = set()
    for number in range(1, 51):
        request = ParsedRequest(compiled.render(user))
        assert request.complete and request.method == "POST"
        match = re.fullmatch(rb"/items/(\d+)\?q=([abc])", request.url)
        assert match and 1 <= int(match.group(1)) <= 5000, request.url
        assert request.header("x-request") == f"n-{number}"
        assert request.header("x-session") == "9"
        assert request.header("host") == "127.0.0.1:8000"
        assert int(request.header("content-length")) == len(request.body)
        body = request.body.decode()
        assert body.endswith('"user": 12, "name": "Zoë"}')
        seen_ids.add(body[8:44])
        assert UUID4.match(body[8:44])
    assert len(seen_ids) == 50


def test_rendered_request_equals_prepare_of_the_rendered_text():
    """Everything but the placeholders' values is laid out exactly as ``http.prepare`` does."""
    plan = endpoint(
        "http://example.com:8080/a b/{{ v }}?x={{ w }}#frag{{ z }}",
        {"Accept": "text/{{ v }}", "X-T": "{{ w }}"},
        "{{ w }}",
        method="PUT",
    )
    user = UserState(1)
    user.variables = {"v": "plain", "w": "x y", "z": "ignored"}
    compiled = compile_request(plan, default_headers={"X-S": "1"})
    assert (
        compiled.render(user)
        == prepare(
            "PUT",
            "http://example.com:8080/a b/plain?x=x y",
            {"Accept": "text/plain", "X-T": "x y"},
            "x y",
            default_headers={"X-S": "1"},
        ).raw
    )


# How a request renders depends on its placeholders (the renderer it compiles to, in
# brackets): the user's values only; values drawn ahead (written into requests in batches)
# alone, or with one or two of the user's; a value of the user's that changes the body's
# length. A "%" in the literal text and in the values
# must survive one format and two. Two choices of different lengths in the body make the
# Content-Length differ per request.
RENDER_PATHS = {
    "one value [_renderer]": ("http://h/5%25/{{ v }}", {"X-A": "5%s"}, "100%%"),
    "two values [_renderer]": ('http://h/{{ choice("5%") }}?q=%{{ w }}', {"X-A": "%d"}, "b%s"),
    "three values [_renderer]": (
        'http://h/{{ v }}?q={{ choice("%x") }}', {"X-A": '{{ choice("%d") }}%s'}, "b%s%",
    ),
    "four values, one in the body [_renderer]": (
        "http://h/{{ v }}/{{ w }}", {"X-A": "%{{ v }}%"}, '%{{ choice("x%") }}%s',
    ),
    "five values [_renderer]": (
        "http://h/{{ v }}/{{ w }}", {"X-A": "%{{ v }}%", "X-B": "{{ w }}"},
        '%{{ choice("x%") }}%s',
    ),
    "a choice of different lengths in the body [_length_renderer]": (
        'http://h/{{ choice("5%") }}', {"X-A": "%d"}, 'b%s{{ choice("x%", "yy%%y") }}%',
    ),
    "a variable in the body [_length_renderer]": (
        "http://h/{{ v }}", {}, '{{ v }}%{{ choice("x%", "yy%%y") }}',
    ),
}  # fmt: skip
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
TRACEPARENT_LINE = re.compile(rb"traceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-01\r\n")


@pytest.mark.parametrize("traceparent", [False, True], ids=["", "traceparent"])
@pytest.mark.parametrize("case", RENDER_PATHS)
def test_every_way_of_rendering_lays_the_request_out_as_prepare_does(case, traceparent):
    url, headers, body = RENDER_PATHS[case]
    user = UserState(1)
    user.variables = {"v": "v%s", "w": "w%%d"}
    compiled = compile_request(endpoint(url, headers, body), traceparent=traceparent)
    renderer = re.search(r"\[(\w+)\]", case).group(1)
    if traceparent:
        renderer = "_length_renderer"  # fresh ids per request
    assert compiled.render.__qualname__.startswith(f"{renderer}.")
    picked_in_body = set()
    for _ in range(200):
        raw = compiled.render(user)
        if traceparent:
            raw, found = TRACEPARENT_LINE.subn(b"", raw)
            assert found == 1
        picked = "yy%%y" if b"yy%%y" in raw.partition(b"\r\n\r\n")[2] else "x%"
        picked_in_body.add(picked)

        def fill(text: str, picked=picked) -> str:
            def filled(match: re.Match) -> str:
                inner = match.group(1).strip()
                options = re.findall(r'"([^"]*)"', inner)
                if not options:
                    return user.variables[inner]
                return options[0] if len(options) == 1 else picked

            return PLACEHOLDER.sub(filled, text)

        header_values = {name: fill(value) for name, value in headers.items()}
        assert raw == prepare("POST", fill(url), header_values, fill(body)).raw
    if 'choice("x%", "yy%%y")' in body:
        assert picked_in_body == {"x%", "yy%%y"}


@pytest.mark.parametrize(
    "value",
    ["random_int(-9, 10)", "random_int(5, 12)", "random_int(-99, -10)", "random_int(0, 9)",
     "uuid()", "now_iso()", "random_string(7)", 'choice("a", "bb")', 'choice("é", "ab")',
     "seq()", "user_id"],
)  # fmt: skip
def test_the_content_length_is_the_body_s_whatever_the_values(value):
    """A body whose values all have one length gets its length written in once: only
    those whose values truly do (random_int's bounds of one sign and as many digits)."""
    compiled = compile_request(endpoint("http://h/", body=f"<{{{{ {value} }}}}>"))
    user = UserState(7)
    for _ in range(300):
        request = ParsedRequest(compiled.render(user))
        assert int(request.header("content-length")) == len(request.body), request.body


def test_an_empty_rendered_body_keeps_the_length_rules_of_prepare():
    user = UserState(1)
    put = compile_request(endpoint("http://h/{{ v }}", method="PUT"))
    assert b"Content-Length: 0\r\n" in put.render(user)
    get = compile_request(endpoint("http://h/{{ v }}", body="{{ v }}", method="GET"))
    assert b"Content-Length" not in get.render(user)
    user.variables = {"v": "abc"}
    assert get.render(user).endswith(b"Content-Length: 3\r\n\r\nabc")
    head = compile_request(endpoint("http://h/{{ v }}", method="HEAD"))
    assert head.prepared.is_head


def test_values_in_the_path_and_query_are_percent_encoded():
    user = UserState(1)
    user.variables = {"v": "a b/☃?#%zz\r\n"}
    compiled = compile_request(endpoint("http://h/p/{{ v }}?q={{ v }}", method="GET"))
    request = ParsedRequest(compiled.render(user))
    assert request.url == b"/p/a%20b/%E2%98%83%3F%23%25zz%0D%0A?q=a%20b/%E2%98%83?%23%25zz%0D%0A"
    choice = compile_request(endpoint("http://h/{{ choice('é x', 'é x') }}", method="GET"))
    assert ParsedRequest(choice.render(user)).url == b"/%C3%A9%20x"


def test_header_injection_is_impossible():
    user = UserState(1)
    user.variables = {"v": "ok\r\nX-Injected: 1\r\n\r\nGET /evil HTTP/1.1\x00\x7f\x1b"}
    user.row = ("\nHost: evil.example",)
    compiled = compile_request(
        endpoint("http://h/", {"X-A": "{{ v }}", "X-B": "{{ feed.c }}"}, body="b"),
        columns=("c",),
    )
    raw = compiled.render(user)
    request = ParsedRequest(raw)
    assert request.complete
    assert [name for name, _ in request.headers] == [
        "host", "user-agent", "accept", "x-a", "x-b", "content-length",
    ]  # fmt: skip
    assert request.header("x-a") == "okX-Injected: 1GET /evil HTTP/1.1"
    assert request.header("host") == "h"
    assert request.body == b"b"
    assert raw.count(b"\r\n\r\n") == 1


def test_wide_characters_in_a_header_value_are_sent_as_utf8_bytes():
    user = UserState(1)
    user.variables = {"v": "é☃"}
    compiled = compile_request(endpoint("http://h/", {"X-A": "{{ v }}"}))
    request = ParsedRequest(compiled.render(user))
    assert request.header("x-a").encode("latin-1") == "é☃".encode()


def test_a_fresh_traceparent_per_render_and_its_trace_id():
    compiled = compile_request(
        endpoint("http://h/{{ seq() }}", {"traceparent": "00-fixed"}), traceparent=True
    )
    user = UserState(1)
    trace_ids = set()
    for _ in range(20):
        raw = compiled.render(user)
        request = ParsedRequest(raw)
        match = TRACEPARENT.match(request.header("traceparent"))
        assert match
        assert compiled.trace_id(raw) == match.group(1)
        trace_ids.add(match.group(1))
        assert request.headers[-1][0] == "traceparent"
    assert len(trace_ids) == 20


@pytest.mark.parametrize(
    "url",
    [
        "http://{{ v }}/x",
        "http://h{{ v }}/x",
        "http://h:{{ random_int(1, 9) }}/x",
        "{{ v }}://h/x",
        "http://u{{ v }}@h/x",
    ],
)
def test_a_template_can_never_change_the_scheme_or_host(url):
    with pytest.raises(ValueError, match=r"scheme or host|http"):
        compile_request(endpoint(url))


def test_compile_errors_are_value_errors():
    with pytest.raises(TemplateError):
        compile_request(endpoint("http://h/{{ x"))
    with pytest.raises(ValueError, match="no such column"):
        compile_request(endpoint("http://h/{{ feed.x }}"), columns=("y",))
    with pytest.raises(ValueError, match="header"):
        compile_request(endpoint("http://h/{{ v }}", {"X-A": "\u2603 {{ v }}"}))


def test_a_templated_request_can_be_given_a_larger_body_limit_like_a_prepared_one():
    """The shard widens ``body_limit`` for an endpoint whose checks read the body."""
    compiled = compile_request(endpoint("http://h/{{ seq() }}"))
    wider = replace(compiled, prepared=replace(compiled.prepared, body_limit=2**20))
    assert wider.prepared.body_limit == 2**20
    assert wider.render(UserState(1)).startswith(b"POST /1 HTTP/1.1\r\n")
