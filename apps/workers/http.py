"""A lean HTTP/1.1 client for the hot loop: keep-alive connections on asyncio protocols.

Why not aiohttp (the original design's choice): a load generator's requests are known in advance, so
each endpoint's request bytes are built once, and a response needs to be parsed, counted and
timed, not turned into objects. On one core this client sends about ten times more requests
than aiohttp (bench/ has the figures), which is what lets one worker process drive a target
harder than Locust does. Parsing is httptools (llhttp, the parser of Node.js and uvicorn).

What it does: HTTP/1.1 over TCP or TLS (certificates verified), one request at a time per
connection, connections kept alive and reused per host, a per-request timeout, the status,
the reason and the first bytes of the body kept (the whole body up to a limit, and the
header names, for an endpoint whose checks read them: ``checks``), and no redirect ever
followed (a load test must not leave its allow-list). What it does not: compression (it
asks for none), HTTP/2, proxies; cookies are the shard's (``cookies``), per virtual user.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

# RFC 9110: a method or header name is a token; a header value is visible ASCII, spaces,
# tabs and obs-text (Latin-1's upper half), nothing else (no line break: no injection).
# (\Z, not $: "$" would also match before a final line break.)
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
FIELD_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*\Z")
# Headers the client writes from the body it sends, and one that would switch protocols:
# given by hand, every request would be mis-framed or fail.
ENGINE_HEADERS = frozenset({"content-length", "transfer-encoding", "upgrade"})
# Characters a request target carries as they are (RFC 3986 pchar, "/" and, in the query,
# "?"); anything else (a space, a non-ASCII character) is percent-encoded as UTF-8. A "%"
# that starts an escape stays; a stray one is encoded.
_PATH_SAFE = "/!$&'()*+,;=:@-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
BODY_PREFIX_BYTES = 256  # kept from each response, for the error log
# A kept-alive connection unused for this long is closed: the pool shrinks back to what the
# load needs now (a closed model's users all connect at once at the start, then need a few).
IDLE_CONNECTION_S = 10.0
USER_AGENT = "loadtest-service/1.0"
# W3C Trace Context: "00-<32 hex trace-id>-<16 hex parent-id>-01" (version 00, sampled).
TRACEPARENT = "traceparent"
TRACEPARENT_LENGTH = 55
_SPAN_ID_MASK = (1 << 64) - 1
_NONZERO_IDS = (1 << 64) | 1  # the lowest bit of the trace id and of the span id
# Set on an exception raised while connecting (``never_reached_target``): an attribute rather
# than an exception class of our own, so the error log keeps the original's name and text.
_UNREACHED = "loadtest_never_reached_target"


class ProtocolError(ConnectionError):
    """The server's answer was not valid HTTP/1.1."""


@dataclass(frozen=True)
class PreparedRequest:
    """An endpoint's request, encoded once and sent many times."""

    scheme: str
    host: str
    port: int
    raw: bytes
    is_head: bool
    # With a traceparent: the bytes before and after its value, which ``traced`` joins
    # around a fresh one (the rest of the request is never encoded again).
    traced_head: bytes | None = None
    traced_tail: bytes = b""
    # How much of the answer to keep: the body's first bytes (more for an endpoint whose
    # checks read it), its headers only when a check or an extraction reads one, and its
    # Set-Cookie values when the session's users keep cookies (flows).
    body_limit: int = BODY_PREFIX_BYTES
    keep_headers: bool = False
    keep_cookies: bool = False

    @property
    def pool_key(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    def traced(self) -> bytes:
        """The request's bytes with a fresh traceparent (new trace and span ids). One draw of
        192 random bits and one bytes format: this runs per request. Random, not
        cryptographic: ids must be unique, not secret. The lowest bit of each id is set, so
        neither is ever zero, which the specification calls invalid."""
        ids = random.getrandbits(192) | _NONZERO_IDS
        return b"%s00-%032x-%016x-01%s" % (
            self.traced_head,
            ids >> 64,
            ids & _SPAN_ID_MASK,
            self.traced_tail,
        )

    def trace_id(self, traced: bytes) -> str:
        """The trace id in bytes ``traced`` made (for a sampled error or request)."""
        assert self.traced_head is not None, "prepared with traceparent=True"
        start = len(self.traced_head) + 3
        return traced[start : start + 32].decode()


def request_target(path: str, query: str) -> str:
    """The path and query as a request line carries them: percent-encoded, UTF-8."""
    target = encode_path(path or "/")
    if query:
        target += "?" + encode_query(query)
    return target


def encode_path(text: str) -> str:
    """``text`` as a request line carries it in a path (see ``request_target``)."""
    return quote(_STRAY_PERCENT.sub("%25", text), safe=_PATH_SAFE)


def encode_query(text: str) -> str:
    """``text`` as a request line carries it in a query (see ``request_target``)."""
    return quote(_STRAY_PERCENT.sub("%25", text), safe=_QUERY_SAFE)


def prepare(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: str = "",
    *,
    default_headers: Mapping[str, str] | None = None,
    traceparent: bool = False,
) -> PreparedRequest:
    """The request's bytes; ValueError if HTTP/1.1 cannot carry it. Messages never quote a
    header value (it may be a credential).

    ``default_headers`` (the session's header) come before the endpoint's own ``headers``,
    which win over one of the same name: an endpoint that sets it means it. With
    ``traceparent``, the last header is a traceparent whose value ``traced`` fills in per
    request; an endpoint's own traceparent is replaced, as a fixed one would make every
    request the same trace.
    """
    if not TOKEN.match(method):
        raise ValueError(f"Not an HTTP method: {method!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Not an http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    default_port = port == (443 if scheme == "https" else 80)
    host_header = parts.hostname if default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:  # IPv6 literal
        host_header = f"[{parts.hostname}]" + ("" if default_port else f":{port}")
    target = request_target(parts.path, parts.query)
    payload = body.encode() if body else b""
    lines = {"host": ("Host", host_header), "user-agent": ("User-Agent", USER_AGENT),
             "accept": ("Accept", "*/*")}  # fmt: skip
    for name, value in [*(default_headers or {}).items(), *(headers or {}).items()]:
        if not TOKEN.match(name):
            raise ValueError(f"{name!r} is not a header name (an HTTP token).")
        if name.lower() in ENGINE_HEADERS:
            raise ValueError(f"Header {name!r} is set by the client itself.")
        if not FIELD_VALUE.match(value):
            raise ValueError(
                f"The value of header {name!r} has a character HTTP does not allow (RFC 9110: "
                "visible ASCII or Latin-1, spaces and tabs)."
            )
        lines[name.lower()] = (name, value)
    if payload or method.upper() in ("POST", "PUT", "PATCH"):
        lines["content-length"] = ("Content-Length", str(len(payload)))
    if traceparent:
        lines.pop(TRACEPARENT, None)
    head = f"{method.upper()} {target} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in lines.values()
    )
    raw = (head + "\r\n").encode("latin-1") + payload
    request = PreparedRequest(scheme, parts.hostname, port, raw, method.upper() == "HEAD")
    if not traceparent:
        return request
    traced_head = (head + f"{TRACEPARENT}: ").encode("latin-1")
    return replace(request, traced_head=traced_head, traced_tail=b"\r\n\r\n" + payload)


@dataclass
class Response:
    status: int
    reason: str
    body_prefix: bytes
    body_bytes: int
    # Lowercase name -> value (repeats joined by ", "), and every Set-Cookie value: kept
    # only if the request asked (``keep_headers``, ``keep_cookies``).
    headers: dict[bytes, bytes] | None = None
    set_cookies: list[bytes] | None = None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; ``send`` must not be called while a request is in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[Response] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._unsolicited = False
        self._keep_alive = True
        self._got_bytes = False
        self._is_head = False
        self.idle_since = 0.0  # loop time when it last went back to the pool
        self._body_limit = BODY_PREFIX_BYTES
        self._headers: dict[bytes, bytes] | None = None
        self._set_cookies: list[bytes] | None = None
        self._reset_answer()

    def _reset_answer(self) -> None:
        """Forget what an answer said so far (a new request, or a 1xx before the final one)."""
        self._reason = b""
        self._body_prefix = bytearray()
        self._body_bytes = 0
        self._got_response = False
        self._framed = False
        if self._headers is not None:
            self._headers = {}
        if self._set_cookies is not None:
            self._set_cookies = []

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection() makes stream transports: they can write.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("The server tried to switch protocols."))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"Invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is None or self._waiter is None or self._waiter.done():
            return
        if self._got_response and exc is None and not self._framed:
            # No length and not chunked: the body ended with the connection (HTTP/1.0 style).
            self._keep_alive = False
            self.on_message_complete()
        else:
            self._fail(exc or ConnectionResetError("The server closed the connection."))

    # --- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._parser is None:  # a second answer in the same read: nobody asked for it
            self._unsolicited = True

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if self._headers is not None:
            earlier = self._headers.get(name)
            self._headers[name] = value if earlier is None else earlier + b", " + value
        if self._set_cookies is not None and name == b"set-cookie":
            self._set_cookies.append(value)
        if name == b"connection" and value.lower() == b"close":
            self._keep_alive = False
        elif name in (b"content-length", b"transfer-encoding"):
            self._framed = True  # the body has a known end: cut short, it is an error

    def on_headers_complete(self) -> None:
        self._got_response = True
        if self._is_head:  # the parser cannot know a HEAD answer has no body
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if len(self._body_prefix) < self._body_limit:
            self._body_prefix += body[: self._body_limit - len(self._body_prefix)]

    def on_message_complete(self) -> None:
        waiter, parser = self._waiter, self._parser
        if parser is None:  # already completed (a HEAD answer), or unsolicited
            return
        if parser.get_status_code() < 200:
            self._reset_answer()  # 100 Continue, 103 Early Hints...: the final answer follows
            return
        self._parser = None
        if waiter is None or waiter.done():
            return
        if not parser.should_keep_alive():
            self._keep_alive = False
        waiter.set_result(
            Response(
                parser.get_status_code(),
                self._reason.decode("latin-1", "replace"),
                bytes(self._body_prefix),
                self._body_bytes,
                self._headers,
                self._set_cookies,
            )
        )

    # --- use ----------------------------------------------------------------------------------

    def send(self, request: PreparedRequest, raw: bytes) -> asyncio.Future[Response]:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._body_limit = request.body_limit
        self._headers = {} if request.keep_headers else None
        self._set_cookies = [] if request.keep_cookies else None
        self._reset_answer()
        self._keep_alive = True
        self._got_bytes = False
        self._is_head = request.is_head
        assert self.transport is not None, "connection_made() comes before any send()"
        self.transport.write(raw)
        return self._waiter

    @property
    def got_bytes(self) -> bool:
        """Did any byte of an answer arrive? If not, the server never took the request."""
        return self._got_bytes

    @property
    def reusable(self) -> bool:
        return (
            not self.closed and self._keep_alive and self._parser is None and not self._unsolicited
        )

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        self._parser = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """Connections per (scheme, host, port), kept alive between requests; one per request in
    flight, so a shard opens as many as it has users busy at once.

    The idle ones form a stack per host: the most recently used is taken first, so the oldest
    sit at the bottom and are closed once idle for IDLE_CONNECTION_S. After a burst (20,000
    users starting together) the pool, its sockets and their buffers shrink back to the few
    the steady load uses.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = defaultdict(deque)
        self._ssl = ssl_context or ssl.create_default_context()
        self.connections_opened = 0  # for the benchmarks: how much connecting the load cost

    async def send(
        self, request: PreparedRequest, timeout_s: float, raw: bytes | None = None
    ) -> Response:
        """Send ``request`` (as ``raw``, when given: its bytes with a traceparent) and read its
        whole answer within ``timeout_s`` (else TimeoutError).

        A request written to a kept-alive connection the server had already closed gets no
        answer at all; it is sent again, once, on a new connection (the server never saw it,
        so the count stays exact).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        raw = request.raw if raw is None else raw
        connection = self._take_idle(request.pool_key)
        if connection is not None:
            try:
                return await self._exchange(connection, request, raw, deadline)
            except TimeoutError:
                raise  # the server may be working on it: never send it twice
            except OSError:
                if connection.got_bytes:
                    raise
        connection = await self._connect(request, deadline)
        return await self._exchange(connection, request, raw, deadline)

    async def _connect(self, request: PreparedRequest, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            connecting = loop.create_connection(
                _Connection,
                request.host,
                request.port,
                ssl=self._ssl if request.scheme == "https" else None,
                server_hostname=request.host if request.scheme == "https" else None,
            )
            _, connection = await asyncio.wait_for(connecting, remaining)
        except BaseException as exc:
            # Refused, timed out, unresolved, a failed TLS handshake, or cancelled by a stop
            # while connecting: no byte of the request left, so the target never had it.
            setattr(exc, _UNREACHED, True)
            raise
        self.connections_opened += 1
        return connection

    async def _exchange(
        self, connection: _Connection, request: PreparedRequest, raw: bytes, deadline: float
    ) -> Response:
        loop = asyncio.get_running_loop()
        answer = connection.send(request, raw)
        timer = loop.call_at(deadline, _expire, answer, connection)
        try:
            response = await answer
        except BaseException:
            connection.close()  # a half-read answer must not meet the next request
            raise
        finally:
            timer.cancel()
        if connection.reusable:
            idle = self._idle[request.pool_key]
            now = loop.time()
            connection.idle_since = now
            idle.append(connection)
            while idle[0].idle_since < now - IDLE_CONNECTION_S:
                idle.popleft().close()
        else:
            connection.close()
        return response

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


def never_reached_target(exc: BaseException) -> bool:
    """Whether ``exc`` ended a send before any byte of its request was written (connection
    refused, connect timeout, DNS, TLS handshake, or a stop while connecting): such an attempt
    is not among what the target received, which the session's counts must say."""
    return getattr(exc, _UNREACHED, False)


def _expire(answer: asyncio.Future[Response], connection: _Connection) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())
        connection.close()
