"""Each virtual user's cookies: what a target's login sets, sent back on that user's requests.

A jar is a plain ``name -> value`` dict on the user (``UserState.cookies``). A target is one
host, so the cookie's Domain and Path are not needed to choose where it goes: every cookie a
user was given is sent on all of its requests (RFC 6265's rules for one host and the path
"/"). Expiry is honoured only as a deletion (``Max-Age`` of 0 or less, an ``Expires`` in the
past): a load test lasts hours, not the months a cookie's date counts in. Bounds keep a user's
jar small whatever a target sends: at most COOKIES_PER_USER cookies of COOKIE_BYTES_MAX each.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

COOKIES_PER_USER = 50
COOKIE_BYTES_MAX = 4096  # name, "=" and value (RFC 6265: at least this must be kept)
_COOKIE_HEADER = b"cookie"


def store(jar: dict[str, str] | None, set_cookies: list[bytes]) -> dict[str, str] | None:
    """The jar after the answer's ``Set-Cookie`` values (a new jar if there was none)."""
    for raw in set_cookies:
        text = raw.decode("latin-1")
        pair, _, attributes = text.partition(";")
        name, equals, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name or len(name) + len(value) + 1 > COOKIE_BYTES_MAX:
            continue  # RFC 6265 5.2: no "=" or no name: ignore the whole header
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if _expired(attributes):
            if jar:
                jar.pop(name, None)
            continue
        if jar is None:
            jar = {}
        if name in jar or len(jar) < COOKIES_PER_USER:
            jar[name] = value
    return jar


def _expired(attributes: str) -> bool:
    for attribute in attributes.split(";"):
        key, _, value = attribute.partition("=")
        key = key.strip().lower()
        if key == "max-age":
            try:
                return int(value.strip()) <= 0
            except ValueError:
                continue  # RFC 6265 5.2.2: an invalid Max-Age is ignored
        if key == "expires":
            try:
                return parsedate_to_datetime(value.strip()).timestamp() <= time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
    return False


def header_value(jar: dict[str, str]) -> bytes:
    """The ``Cookie`` header's value for the jar."""
    return "; ".join(f"{name}={value}" for name, value in jar.items()).encode("latin-1")


def with_cookies(raw: bytes, jar: dict[str, str]) -> bytes:
    """The request ``raw`` carrying the jar's cookies: a ``Cookie`` header added before the
    blank line that ends the head, or, when the endpoint sets one itself, the jar's pairs
    appended to it (a request carries one Cookie header: RFC 6265 5.4)."""
    value = header_value(jar)
    head_end = raw.find(b"\r\n\r\n")
    head = raw[:head_end]
    start = 0
    while True:
        line_start = head.find(b"\r\n", start)
        if line_start < 0:
            break
        line_end = head.find(b"\r\n", line_start + 2)
        line_end = len(head) if line_end < 0 else line_end
        name, colon, _ = head[line_start + 2 : line_end].partition(b":")
        if colon and name.strip().lower() == _COOKIE_HEADER:
            return raw[:line_end] + b"; " + value + raw[line_end:]
        start = line_end
    return raw[: head_end + 2] + b"Cookie: " + value + b"\r\n" + raw[head_end + 2 :]
