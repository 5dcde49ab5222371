"""Paths, queries and headers reach the target as valid HTTP/1.1, or are refused up front.

A path with a space or a non-Latin-1 character (``☃``, U+2028) used to be accepted and then
written raw into the request line: every request failed (a UnicodeEncodeError, or a 400 from
the target for a malformed request line). The engine now percent-encodes the path and query
as UTF-8, and refuses header values HTTP cannot carry. Checked byte by byte against a raw
server, and end to end through a real worker against a real HTTP server.
"""

from __future__ import annotations

import asyncio

import pytest

from apps.workers.http import HttpClient, prepare, request_target

from ..support.raw_servers import RawServer
from ..support.sessions import BRISK, start_load, wait_for_status

TIMEOUT_S = 2.0


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/caf\u00e9 menu/\u2603", "", "/caf%C3%A9%20menu/%E2%98%83"),
        ("/a\u2028b", "", "/a%E2%80%A8b"),
        ("/a%20b/%E2%98%83", "", "/a%20b/%E2%98%83"),  # already encoded: kept
        ("/100%", "", "/100%25"),  # a stray "%" is encoded
        ("/p", "q=\u2603 x&a=%41&b=100%&c=?/:@", "/p?q=%E2%98%83%20x&a=%41&b=100%25&c=?/:@"),
        ("/keep/!$&'()*+,;=:@-._~", "", "/keep/!$&'()*+,;=:@-._~"),
        ("", "", "/"),
        ("/\u202eevil", "", "/%E2%80%AEevil"),
    ],
)
def test_request_target_is_percent_encoded_utf8(path, query, expected):
    assert request_target(path, query) == expected


def test_prepare_writes_an_ascii_request_line():
    request = prepare("GET", "http://127.0.0.1:8000/caf\u00e9 x/\u2603?q=\u2028")
    line = request.raw.split(b"\r\n", 1)[0]
    assert line == b"GET /caf%C3%A9%20x/%E2%98%83?q=%E2%80%A8 HTTP/1.1"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Snow": "\u2603"},
        {"X-Line": "a\u2028b"},
        {"X-Rtl": "\u202eabc"},
        {"X-Trail": "abc\n"},
        {"X-Evil\n": "v"},
        {"X-Del": "a\x7f"},
        {"Content-Length": "5"},
        {"Transfer-Encoding": "chunked"},
        {"Upgrade": "websocket"},
    ],
)
def test_prepare_refuses_header_values_http_cannot_carry_without_quoting_them(headers):
    with pytest.raises(ValueError) as exc:
        prepare("GET", "http://127.0.0.1/", headers)
    ((_, value),) = headers.items()
    assert value not in str(exc.value) or value == "v"  # a value may be a credential


def test_latin_1_header_values_are_sent_as_latin_1():
    request = prepare("GET", "http://127.0.0.1/", {"X-Cafe": "caf\u00e9 \u00ff"})
    assert b"X-Cafe: caf\xe9 \xff\r\n" in request.raw


def test_a_raw_server_receives_the_encoded_target_and_answers():
    async def main():
        client = HttpClient()
        try:
            async with RawServer() as server:
                url = server.url("/caf\u00e9 menu/\u2603") + "?q=\u2028 x"
                answer = await client.send(prepare("GET", url), TIMEOUT_S)
                return answer.status, [request.target for request in server.requests]
        finally:
            client.close()

    status, targets = asyncio.run(asyncio.wait_for(main(), 5))
    assert status == 200
    assert targets == ["/caf%C3%A9%20menu/%E2%98%83?q=%E2%80%A8%20x"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_session_with_a_unicode_path_loads_the_target_without_failures(
    api, workers, counting_server, forget_redis_sessions
):
    path = "/caf\u00e9 menu/\u2603"
    session_id = start_load(
        api, counting_server, [("menu", f"{path}?q=\u2603 x", 1.0)], concurrent_users=2,
        duration_minutes="0.03", **BRISK,
    )  # fmt: skip
    session = wait_for_status(session_id, timeout_s=30)
    assert session.status == "completed", session.end_detail
    assert session.total_failures == 0
    # The server decoded the path back to what the endpoint names: the same resource.
    assert counting_server.count(path) == session.total_requests > 5
