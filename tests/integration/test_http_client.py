"""apps.workers.http builds requests and reads answers right: ``prepare``'s bytes, every way an
answer is framed (lengths, chunks, HEAD, 204/304, close-delimited, cut short, interim 1xx),
timeouts, refusals, invalid answers and TLS. Against raw asyncio servers on 127.0.0.1 that
answer byte by byte, so every case is exact. How connections are kept, reused, retried and
dropped is in test_http_connections."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from apps.workers.http import (
    BODY_PREFIX_BYTES,
    USER_AGENT,
    HttpClient,
    PreparedRequest,
    ProtocolError,
    never_reached_target,
    prepare,
)

from ..support.raw_servers import (
    BODY,
    TIMEOUT_S,
    RawServer,
    answer_first_then,
    never_answer,
    response,
    run,
    wait_for_eof,
)
from ..support.servers import FullBacklogListener


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- 3-7: framing ---------------------------------------------------------------------------------


def test_chunked_body_is_read_completely_and_the_connection_reused():
    chunks = [BODY[:100], BODY[100:356], BODY[356:]]

    async def handler(connection, request):
        connection.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in chunks:  # one TCP write each, so the client reads them apart
            await connection.writer.drain()
            await asyncio.sleep(0.01)
            connection.write(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
        connection.write(b"0\r\nX-Trailer: yes\r\n\r\n")

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                request = prepare("GET", server.url())
                answers = [await client.send(request, TIMEOUT_S) for _ in range(2)]
                assert len(server.connections) == 1
                assert len(server.connections[0].requests) == 2
                return answers
        finally:
            client.close()

    for answer in run(main()):
        assert answer.body_bytes == len(BODY)
        assert answer.body_prefix == BODY[:BODY_PREFIX_BYTES]


def test_head_answer_with_content_length_completes_at_once_and_keeps_the_connection():
    async def handler(connection, request):
        if request.method == "HEAD":  # the length of the body a GET would get; none is sent
            connection.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        else:
            connection.write(response(body=b"the body"))

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                started = time.monotonic()
                head = await client.send(prepare("HEAD", server.url()), 1.0)
                head_s = time.monotonic() - started
                get = await client.send(prepare("GET", server.url()), 1.0)
                assert [r.method for r in server.requests] == ["HEAD", "GET"]
                assert len(server.connections) == 1
                return head, head_s, get
        finally:
            client.close()

    head, head_s, get = run(main())
    assert (head.status, head.body_bytes, head.body_prefix) == (200, 0, b"")
    assert head_s < 0.5
    assert (get.status, get.body_prefix, get.body_bytes) == (200, b"the body", 8)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        # A 304 may state the length of the representation it does not send.
        b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n',
    ],
)
def test_204_and_304_complete_without_a_body(answer):
    async def handler(connection, request):
        connection.write(answer if request.target == "/empty" else response(body=b"next"))

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                started = time.monotonic()
                empty = await client.send(prepare("GET", server.url("/empty")), 1.0)
                elapsed = time.monotonic() - started
                following = await client.send(prepare("GET", server.url("/next")), 1.0)
                assert len(server.connections) == 1
                return empty, elapsed, following
        finally:
            client.close()

    empty, elapsed, following = run(main())
    assert empty.status == int(answer[9:12])
    assert (empty.body_bytes, empty.body_prefix) == (0, b"")
    assert elapsed < 0.5
    assert following.body_prefix == b"next"


@pytest.mark.parametrize("server_closes", [True, False], ids=["server-closes", "server-lingers"])
def test_connection_close_answer_completes_and_the_next_request_opens_a_new_connection(
    server_closes,
):
    async def handler(connection, request):
        connection.write(response(body=b"bye", headers={"Connection": "close"}))
        if server_closes:
            await connection.writer.drain()
            connection.close()

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                first = await client.send(prepare("GET", server.url()), TIMEOUT_S)
                if not server_closes:  # the client must close it itself, not keep it
                    await wait_for_eof(server.connections[0])
                second = await client.send(prepare("GET", server.url()), TIMEOUT_S)
                assert len(server.connections) == 2
                assert [len(c.requests) for c in server.connections] == [1, 1]
                return first, second
        finally:
            client.close()

    for answer in run(main()):
        assert (answer.status, answer.body_prefix, answer.body_bytes) == (200, b"bye", 3)


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_body_delimited_by_the_server_closing_is_read_whole(version):
    async def handler(connection, request):
        connection.write(f"{version} 200 OK\r\nContent-Type: text/plain\r\n\r\n".encode())
        connection.write(BODY[:300])
        await connection.writer.drain()
        await asyncio.sleep(0.02)
        connection.write(BODY[300:])
        await connection.writer.drain()
        connection.close()

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                first = await client.send(prepare("GET", server.url()), TIMEOUT_S)
                second = await client.send(prepare("GET", server.url()), TIMEOUT_S)
                assert len(server.connections) == 2
                return first, second
        finally:
            client.close()

    for answer in run(main()):
        assert answer.status == 200
        assert answer.body_bytes == len(BODY)
        assert answer.body_prefix == BODY[:BODY_PREFIX_BYTES]


@pytest.mark.parametrize(
    "cut_answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n0123456789",
    ],
    ids=["content-length", "chunked"],
)
def test_body_cut_short_is_a_connection_error(cut_answer):
    async def handler(connection, request):
        connection.write(cut_answer)
        await connection.writer.drain()
        connection.close()

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                with pytest.raises(ConnectionError):
                    await client.send(prepare("GET", server.url()), TIMEOUT_S)
                assert len(server.requests) == 1  # a response had begun: never sent again
        finally:
            client.close()

    run(main())


# --- 11-13: timeouts, refusals, invalid answers --------------------------------------------------


def test_timeout_raises_in_time_and_closes_the_connection():
    async def main():
        client = HttpClient()
        try:
            async with RawServer(never_answer) as server:
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    await client.send(prepare("GET", server.url()), 0.3)
                elapsed = time.monotonic() - started
                await wait_for_eof(server.connections[0], 1.0)
                assert len(server.requests) == 1
                return elapsed
        finally:
            client.close()

    elapsed = run(main())
    assert 0.29 <= elapsed < 0.8


def test_timeout_on_a_reused_connection_is_not_retried():
    """TimeoutError is an OSError: it must not take the retry path meant for dead sockets."""

    async def main():
        client = HttpClient()
        try:
            async with RawServer(answer_first_then(never_answer)) as server:
                await client.send(prepare("GET", server.url("/warm")), TIMEOUT_S)
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    await client.send(prepare("GET", server.url("/slow")), 0.3)
                elapsed = time.monotonic() - started
                await wait_for_eof(server.connections[0], 1.0)
                await asyncio.sleep(0.05)
                assert len(server.connections) == 1
                assert [r.target for r in server.requests] == ["/warm", "/slow"]
                return elapsed
        finally:
            client.close()

    assert run(main()) < 0.8


def test_connection_refused_is_an_os_error():
    async def main():
        client = HttpClient()
        try:
            await client.send(prepare("GET", f"http://127.0.0.1:{free_port()}/"), TIMEOUT_S)
        finally:
            client.close()

    with pytest.raises(ConnectionRefusedError):
        run(main())


def test_a_failure_before_the_request_left_says_it_never_reached_the_target():
    """Refused, a connect timeout (a full listen backlog) and a stop while connecting are
    marked ``never_reached_target``; a timeout waiting for the answer to a request written is
    not: the target has that request."""

    async def outcome(send) -> tuple[type[BaseException], bool]:
        client = HttpClient()
        try:
            await send(client)
        except BaseException as exc:  # CancelledError too
            return type(exc), never_reached_target(exc)
        finally:
            client.close()
        raise AssertionError("the send succeeded")

    async def main(full_backlog_url: str):
        refused = await outcome(
            lambda c: c.send(prepare("GET", f"http://127.0.0.1:{free_port()}/"), TIMEOUT_S)
        )
        connect_timeout = await outcome(lambda c: c.send(prepare("GET", full_backlog_url), 0.3))

        async def cut_while_connecting(c):
            sending = asyncio.ensure_future(c.send(prepare("GET", full_backlog_url), TIMEOUT_S))
            await asyncio.sleep(0.1)
            sending.cancel()
            await sending

        cut = await outcome(cut_while_connecting)
        async with RawServer(never_answer) as server:
            answer_timeout = await outcome(lambda c: c.send(prepare("GET", server.url()), 0.3))
            assert len(server.requests) == 1
        return refused, connect_timeout, cut, answer_timeout

    listener = FullBacklogListener().start()
    try:
        refused, connect_timeout, cut, answer_timeout = run(main(listener.base_url + "/"))
    finally:
        listener.stop()
    assert refused == (ConnectionRefusedError, True)
    assert connect_timeout == (TimeoutError, True)
    assert cut == (asyncio.CancelledError, True)
    assert answer_timeout == (TimeoutError, False)


def test_invalid_http_answer_is_a_protocol_error_and_the_connection_is_dropped():
    async def handler(connection, request):
        connection.write(b"garbage\r\n\r\n")

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                with pytest.raises(ProtocolError) as caught:
                    await client.send(prepare("GET", server.url()), TIMEOUT_S)
                await wait_for_eof(server.connections[0], 1.0)
                assert len(server.requests) == 1
                return caught.value
        finally:
            client.close()

    error = run(main())
    assert isinstance(error, ConnectionError)
    assert isinstance(error, OSError)


# --- 14: prepare ----------------------------------------------------------------------------------

DEFAULTS = f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\n"


def test_prepare_get_with_query_string():
    request = prepare("get", "http://Example.COM/search/items?q=a%20b&page=2#fragment")
    assert request == PreparedRequest(
        "http",
        "example.com",
        80,
        b"GET /search/items?q=a%20b&page=2 HTTP/1.1\r\nHost: example.com\r\n"
        + DEFAULTS.encode()
        + b"\r\n",
        False,
    )
    assert request.pool_key == ("http", "example.com", 80)


@pytest.mark.parametrize(
    ("url", "host", "port", "host_header"),
    [
        ("http://example.com:8080/a", "example.com", 8080, "example.com:8080"),
        ("https://example.com:8443/a", "example.com", 8443, "example.com:8443"),
        ("http://example.com:80/a", "example.com", 80, "example.com"),
        ("https://example.com/a", "example.com", 443, "example.com"),
        ("https://example.com:443/a", "example.com", 443, "example.com"),
        ("http://example.com:443/a", "example.com", 443, "example.com:443"),
        ("https://example.com:80/a", "example.com", 80, "example.com:80"),
        ("http://[::1]:8080/a", "::1", 8080, "[::1]:8080"),
        ("http://[::1]/a", "::1", 80, "[::1]"),
        ("https://[2001:DB8::1]/a", "2001:db8::1", 443, "[2001:db8::1]"),
    ],
)
def test_prepare_host_header_and_port(url, host, port, host_header):
    request = prepare("GET", url)
    assert (request.host, request.port) == (host, port)
    assert request.raw == f"GET /a HTTP/1.1\r\nHost: {host_header}\r\n{DEFAULTS}\r\n".encode()


def test_prepare_path_defaults_to_slash():
    assert prepare("GET", "https://example.com:8443").raw.startswith(b"GET / HTTP/1.1\r\n")


def test_prepare_custom_headers_override_defaults_case_insensitively():
    request = prepare(
        "GET",
        "http://example.com/",
        {"accept": "application/json", "USER-AGENT": "custom/2", "X-Token": "abc"},
    )
    assert request.raw == (
        b"GET / HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"USER-AGENT: custom/2\r\n"
        b"accept: application/json\r\n"
        b"X-Token: abc\r\n"
        b"\r\n"
    )


def test_prepare_post_body_gets_its_byte_length():
    request = prepare("post", "http://example.com/items", {"Content-Type": "text/plain"}, "héllo")
    assert request.raw == (
        b"POST /items HTTP/1.1\r\n"
        b"Host: example.com\r\n" + DEFAULTS.encode() + b"Content-Type: text/plain\r\n"
        b"Content-Length: 6\r\n"
        b"\r\n"
        b"h\xc3\xa9llo"
    )
    assert request.is_head is False


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH"])
def test_prepare_empty_body_with_a_body_method_says_content_length_0(method):
    request = prepare(method, "http://example.com/x")
    assert (
        request.raw
        == (
            f"{method} /x HTTP/1.1\r\nHost: example.com\r\n{DEFAULTS}Content-Length: 0\r\n\r\n"
        ).encode()
    )


def test_prepare_get_and_head_without_body_have_no_content_length():
    assert b"Content-Length" not in prepare("GET", "http://example.com/").raw
    head = prepare("head", "http://example.com/")
    assert head.is_head is True
    assert head.raw.startswith(b"HEAD / HTTP/1.1\r\n")
    assert b"Content-Length" not in head.raw


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nInjected: yes"},
        {"X-Evil": "a\nInjected: yes"},
        {"X-Evil": "a\rb"},
        {"X-Evil": "a\0b"},
        {"X-Evil\r\nInjected": "yes"},
        {"X-Evil\n": "yes"},
        {"X-Ev\0il": "yes"},
        {"X:Evil": "yes"},
        {"X-Evil:": "yes"},
    ],
)
def test_prepare_refuses_forbidden_characters_in_headers(headers):
    with pytest.raises(ValueError):
        prepare("GET", "http://example.com/", headers)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "ws://example.com/socket",
        "example.com/path",
        "//example.com/path",
        "http:///no-host",
        "",
    ],
)
def test_prepare_refuses_non_http_urls(url):
    with pytest.raises(ValueError):
        prepare("GET", url)


# --- 15: TLS --------------------------------------------------------------------------------------


@pytest.fixture
def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("The openssl CLI is not installed: cannot make a test certificate.")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def test_tls_with_a_trusted_certificate_succeeds_and_reuses_the_connection(self_signed_cert):
    cert, key = self_signed_cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main():
        client = HttpClient(ssl_context=client_ctx)
        try:
            async with RawServer(ssl_context=server_ctx) as server:
                assert server.url().startswith("https://127.0.0.1:")
                answers = [
                    await client.send(prepare("GET", server.url()), TIMEOUT_S) for _ in range(3)
                ]
                assert len(server.connections) == 1
                assert len(server.connections[0].requests) == 3
                return answers
        finally:
            client.close()

    for answer in run(main()):
        assert (answer.status, answer.body_prefix) == (200, b"ok")


def test_tls_with_an_untrusted_certificate_fails_verification(self_signed_cert):
    cert, key = self_signed_cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        client = HttpClient()  # the default context: the system's CAs only
        try:
            async with RawServer(ssl_context=server_ctx) as server:
                with pytest.raises(ssl.SSLCertVerificationError) as caught:
                    await client.send(prepare("GET", server.url()), TIMEOUT_S)
                assert server.requests == []
                return caught.value
        finally:
            client.close()

    assert isinstance(run(main()), OSError)


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"],
    ids=["103", "100"],
)
def test_interim_1xx_answer_is_skipped_for_the_final_one(interim):
    async def handler(connection, request):
        connection.write(interim + response(body=b"final"))

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                return await client.send(prepare("GET", server.url()), TIMEOUT_S)
        finally:
            client.close()

    answer = run(main())
    assert (answer.status, answer.body_prefix) == (200, b"final")


@pytest.mark.parametrize("method", ["GE\r\nT", "GET X", "", "GET\0"])
def test_prepare_refuses_a_method_that_is_not_a_token(method):
    with pytest.raises(ValueError):
        prepare(method, "http://127.0.0.1/")
