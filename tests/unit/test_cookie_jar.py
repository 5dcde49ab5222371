"""Each virtual user's cookie jar: what a Set-Cookie stores or deletes, and how the cookies
ride on a request's bytes."""

import httptools

from apps.workers.cookies import COOKIE_BYTES_MAX, COOKIES_PER_USER, store, with_cookies
from apps.workers.http import prepare


def test_set_cookie_stores_replaces_and_deletes():
    jar = store(None, [b"sid=abc; Path=/; HttpOnly", b'theme="dark"'])
    assert jar == {"sid": "abc", "theme": "dark"}
    jar = store(jar, [b"sid=def"])
    assert jar == {"sid": "def", "theme": "dark"}
    jar = store(jar, [b"sid=; Max-Age=0", b"theme=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"])
    assert jar == {}


def test_malformed_and_oversized_cookies_are_ignored_and_the_jar_is_bounded():
    jar = store(None, [b"novalue", b"=nameless", b"big=" + b"x" * COOKIE_BYTES_MAX,
                       b"ok=1; Max-Age=soon"])  # fmt: skip
    assert jar == {"ok": "1"}
    many = [f"c{i}=v".encode() for i in range(COOKIES_PER_USER + 10)]
    assert len(store(None, many)) == COOKIES_PER_USER


def parsed_headers(raw: bytes) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []

    class Collector:
        def on_header(self, name, value):
            headers.append((name.lower(), value))

    httptools.HttpRequestParser(Collector()).feed_data(raw)
    return headers


def test_cookies_ride_as_one_header_before_the_body():
    request = prepare("POST", "http://127.0.0.1:1/a", {"X-A": "1"}, '{"b": 2}')
    raw = with_cookies(request.raw, {"sid": "abc", "t": "1"})
    assert (b"cookie", b"sid=abc; t=1") in parsed_headers(raw)
    assert raw.endswith(b'\r\n\r\n{"b": 2}')


def test_an_endpoints_own_cookie_header_gets_the_jars_pairs_appended():
    request = prepare("GET", "http://127.0.0.1:1/a", {"Cookie": "fixed=1", "X-B": "2"})
    raw = with_cookies(request.raw, {"sid": "abc"})
    cookies = [value for name, value in parsed_headers(raw) if name == b"cookie"]
    assert cookies == [b"fixed=1; sid=abc"]
