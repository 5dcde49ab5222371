"""apps.workers.http's connections: what the client keeps, reuses, retries and drops.

One connection per concurrent request, reused after; an idle connection the server closed
costs no request and a fresh one is never retried, a reused one closed before any answer byte
is retried exactly once; a cancelled send, unsolicited bytes or an extra answer make the
client drop the connection; connections idle past the limit are closed. Against raw asyncio
servers on 127.0.0.1 that count connections and requests: the truth the load engine's counts
rest on. How requests are built and answers read is in test_http_client.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from apps.workers.http import BODY_PREFIX_BYTES, HttpClient, prepare

from ..support.raw_servers import (
    BODY,
    TIMEOUT_S,
    RawServer,
    answer_first_then,
    close_without_answer,
    never_answer,
    response,
    run,
    wait_for_eof,
)

# --- 1-2: keep-alive and concurrency -------------------------------------------------------------


def test_get_reads_status_reason_body_and_reuses_one_connection():
    async def handler(connection, request):
        connection.write(response(203, "Fine Thanks", BODY))

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                request = prepare("GET", server.url("/items?page=2"))
                answers = [await client.send(request, TIMEOUT_S) for _ in range(5)]
                assert len(server.connections) == 1
                assert len(server.connections[0].requests) == 5
                assert all(got.head + got.body == request.raw for got in server.requests)
                return answers
        finally:
            client.close()

    answers = run(main())
    for answer in answers:
        assert answer.status == 203
        assert answer.reason == "Fine Thanks"
        assert answer.body_prefix == BODY[:BODY_PREFIX_BYTES]
        assert len(answer.body_prefix) == 256
        assert answer.body_bytes == len(BODY)


def test_concurrent_requests_open_one_connection_each_then_reuse_them():
    users = 20

    async def main():
        everyone_in = asyncio.Barrier(users)  # no answer before all 20 requests are in flight

        async def handler(connection, request):
            await everyone_in.wait()
            connection.write(response(body=request.target.encode()))

        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                for round_ in range(2):
                    requests = [prepare("GET", server.url(f"/r{round_}/{i}")) for i in range(users)]
                    answers = await asyncio.gather(
                        *(client.send(request, TIMEOUT_S) for request in requests)
                    )
                    assert [a.status for a in answers] == [200] * users
                    assert [a.body_prefix for a in answers] == [
                        f"/r{round_}/{i}".encode() for i in range(users)
                    ]
                    assert len(server.connections) == users  # the 2nd round opened none
                assert [len(c.requests) for c in server.connections] == [2] * users
        finally:
            client.close()

    run(main())


# --- 9-10: closed connections and the single retry ----------------------------------------------


@pytest.mark.parametrize(
    "client_noticed", [False, True], ids=["close-races-the-request", "close-seen-before"]
)
def test_idle_connection_closed_by_the_server_the_next_request_arrives_exactly_once(
    client_noticed,
):
    async def main():
        client = HttpClient()
        try:
            async with RawServer() as server:
                await client.send(prepare("GET", server.url("/one")), TIMEOUT_S)
                server.connections[0].close()
                if client_noticed:
                    await asyncio.sleep(0.05)
                # else: the request is written to the old socket before its close is known
                second = await client.send(prepare("GET", server.url("/two")), TIMEOUT_S)
                assert second.status == 200
                assert [r.target for r in server.requests] == ["/one", "/two"]
                assert [len(c.requests) for c in server.connections] == [1, 1]
        finally:
            client.close()

    run(main())


def test_fresh_connection_closed_without_an_answer_fails_after_one_attempt():
    async def main():
        client = HttpClient()
        try:
            async with RawServer(close_without_answer) as server:
                with pytest.raises(ConnectionError):
                    await client.send(prepare("GET", server.url()), TIMEOUT_S)
                await asyncio.sleep(0.05)  # room for a (wrong) second attempt to show up
                assert len(server.connections) == 1
                assert len(server.requests) == 1
        finally:
            client.close()

    run(main())


def test_reused_connection_closed_without_an_answer_is_retried_once_on_a_new_one():
    async def main():
        client = HttpClient()
        try:
            async with RawServer(answer_first_then(close_without_answer)) as server:
                # Every connection answers its first request only; the retried request is a
                # new connection's first one, so the server answers it with success...
                await client.send(prepare("GET", server.url("/warm")), TIMEOUT_S)
                again = await client.send(prepare("GET", server.url("/again")), TIMEOUT_S)
                assert again.body_prefix == b"first"
                assert [[r.target for r in c.requests] for c in server.connections] == [
                    ["/warm", "/again"],
                    ["/again"],
                ]
        finally:
            client.close()

    run(main())


def test_reused_connection_closed_without_an_answer_then_new_one_too_fails_after_two_attempts():
    async def handler(connection, request):
        if request.target == "/warm":
            connection.write(response(body=b"warm"))
        else:
            connection.close()

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                await client.send(prepare("GET", server.url("/warm")), TIMEOUT_S)
                with pytest.raises(ConnectionError):
                    await client.send(prepare("GET", server.url("/doomed")), TIMEOUT_S)
                await asyncio.sleep(0.05)  # room for a (wrong) third attempt to show up
                assert [[r.target for r in c.requests] for c in server.connections] == [
                    ["/warm", "/doomed"],
                    ["/doomed"],
                ]
        finally:
            client.close()

    run(main())


@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\nContent-Len", b"garbage\r\n\r\n"],
    ids=["headers-cut-short", "invalid-answer"],
)
def test_reused_connection_failing_after_response_bytes_is_not_retried(partial):
    async def then(connection, request):
        connection.write(partial)
        await connection.writer.drain()
        connection.close()

    async def main():
        client = HttpClient()
        try:
            async with RawServer(answer_first_then(then)) as server:
                await client.send(prepare("GET", server.url("/warm")), TIMEOUT_S)
                with contextlib.suppress(ConnectionError):
                    await client.send(prepare("GET", server.url("/once")), TIMEOUT_S)
                await asyncio.sleep(0.05)
                # The server answered (badly): the request was seen; it must not be resent.
                assert [r.target for r in server.requests].count("/once") == 1
        finally:
            client.close()

    run(main())


def test_reused_connection_failing_mid_body_is_not_retried():
    async def then(connection, request):
        connection.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await connection.writer.drain()
        connection.close()

    async def main():
        client = HttpClient()
        try:
            async with RawServer(answer_first_then(then)) as server:
                await client.send(prepare("GET", server.url("/warm")), TIMEOUT_S)
                with pytest.raises(ConnectionError):
                    await client.send(prepare("GET", server.url("/once")), TIMEOUT_S)
                await asyncio.sleep(0.05)  # room for a (wrong) second attempt to show up
                assert len(server.connections) == 1
                assert [r.target for r in server.requests] == ["/warm", "/once"]
        finally:
            client.close()

    run(main())


# --- 16-17: cancellation, unsolicited bytes -------------------------------------------------------


def test_cancelled_send_closes_its_connection_and_does_not_pool_it():
    async def main():
        client = HttpClient()
        try:
            async with RawServer(answer_first_then(never_answer)) as server:
                await client.send(prepare("GET", server.url("/warm")), TIMEOUT_S)
                pending = asyncio.create_task(client.send(prepare("GET", server.url("/hang")), 5))
                while len(server.requests) < 2:
                    await asyncio.sleep(0.005)
                pending.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await pending
                await wait_for_eof(server.connections[0], 1.0)
                after = await client.send(prepare("GET", server.url("/after")), TIMEOUT_S)
                assert after.body_prefix == b"first"  # a new connection's first answer
                assert [[r.target for r in c.requests] for c in server.connections] == [
                    ["/warm", "/hang"],
                    ["/after"],
                ]
        finally:
            client.close()

    run(main())


def test_bytes_arriving_on_an_idle_connection_make_the_client_drop_it():
    async def main():
        client = HttpClient()
        try:
            async with RawServer() as server:
                await client.send(prepare("GET", server.url("/one")), TIMEOUT_S)
                server.connections[0].write(b"garbage")
                await wait_for_eof(server.connections[0], 1.0)
                await client.send(prepare("GET", server.url("/two")), TIMEOUT_S)
                assert [[r.target for r in c.requests] for c in server.connections] == [
                    ["/one"],
                    ["/two"],
                ]
        finally:
            client.close()

    run(main())


def test_garbage_right_after_a_complete_answer_makes_the_client_drop_the_connection():
    async def handler(connection, request):
        connection.write(response(body=b"ok") + b"garbage\r\n\r\n")  # one TCP write

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                first = await client.send(prepare("GET", server.url("/one")), TIMEOUT_S)
                await wait_for_eof(server.connections[0], 1.0)
                await client.send(prepare("GET", server.url("/two")), TIMEOUT_S)
                assert len(server.connections) == 2
                return first
        finally:
            client.close()

    first = run(main())
    assert (first.status, first.body_prefix) == (200, b"ok")


def test_an_unsolicited_extra_response_in_the_same_read_makes_the_client_drop_the_connection():
    async def handler(connection, request):
        connection.write(response(body=b"ok") + response(500, "Unsolicited"))

    async def main():
        client = HttpClient()
        try:
            async with RawServer(handler) as server:
                await client.send(prepare("GET", server.url("/one")), TIMEOUT_S)
                await wait_for_eof(server.connections[0], 0.3)
        finally:
            client.close()

    run(main())


def test_connections_idle_past_the_limit_are_closed_when_the_pool_is_next_used(monkeypatch):
    """After a burst the pool shrinks back: the connections nobody used for IDLE_CONNECTION_S
    are closed (the server sees them end), the one in use stays."""
    monkeypatch.setattr("apps.workers.http.IDLE_CONNECTION_S", 0.3)

    async def main():
        client = HttpClient()
        try:
            async with RawServer() as server:
                burst = [
                    client.send(prepare("GET", server.url(f"/{n}")), TIMEOUT_S) for n in range(3)
                ]
                await asyncio.gather(*burst)
                assert len(server.connections) == 3
                await asyncio.sleep(0.5)
                await client.send(prepare("GET", server.url("/after")), TIMEOUT_S)
                used = [c for c in server.connections if len(c.requests) == 2]
                unused = [c for c in server.connections if len(c.requests) == 1]
                assert len(used) == 1 and len(unused) == 2
                for connection in unused:
                    await wait_for_eof(connection)
                assert not used[0].eof.is_set()
                await client.send(prepare("GET", server.url("/again")), TIMEOUT_S)
                assert len(server.connections) == 3  # the kept one served it
        finally:
            client.close()

    run(main())
