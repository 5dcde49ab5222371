"""Raw HTTP/1.1 test servers on 127.0.0.1, controlled byte by byte.

``RawServer`` runs ``asyncio.start_server`` in the test's own event loop. It reads each
request (head plus a Content-Length body), records it on its connection, and hands it to
the test's handler, which writes whatever bytes the case needs and may close the
connection. Every accepted connection is kept with its requests and an event set when the
client's side reached EOF, so a test can count connections and requests exactly.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    head: bytes  # request line and headers, up to and including the blank line
    body: bytes

    @property
    def method(self) -> str:
        return self.head.split(b" ", 1)[0].decode("latin-1")

    @property
    def target(self) -> str:
        return self.head.split(b" ", 2)[1].decode("latin-1")


@dataclass
class RawConnection:
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[RawRequest] = field(default_factory=list)
    eof: asyncio.Event = field(default_factory=asyncio.Event)  # the client closed its side
    closed_by_server: bool = False

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.closed_by_server = True
        self.writer.close()


Handler = Callable[[RawConnection, RawRequest], Awaitable[None]]


def response(
    status: int = 200,
    reason: str = "OK",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    content_length: bool = True,
) -> bytes:
    """An HTTP/1.1 answer with a Content-Length (unless told not to)."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def answer_ok(connection: RawConnection, request: RawRequest) -> None:
    connection.write(response(body=b"ok"))


async def never_answer(connection: RawConnection, request: RawRequest) -> None:
    pass


async def close_without_answer(connection: RawConnection, request: RawRequest) -> None:
    connection.close()


def answer_first_then(then):
    """A handler answering each connection's first request, then doing ``then`` with the rest."""

    async def handler(connection: RawConnection, request: RawRequest) -> None:
        if len(connection.requests) == 1:
            connection.write(response(body=b"first"))
        else:
            await then(connection, request)

    return handler


class RawServer:
    """``async with RawServer(handler) as server``: ``server.url(path)``,
    ``server.connections``, ``server.requests``."""

    def __init__(self, handler: Handler = answer_ok, ssl_context: ssl.SSLContext | None = None):
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections: list[RawConnection] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def requests(self) -> list[RawRequest]:
        return [request for connection in self.connections for request in connection.requests]

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._server.close()
        for connection in self.connections:
            connection.writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = RawConnection(len(self.connections), reader, writer)
        self.connections.append(connection)
        try:
            while not connection.closed_by_server:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    connection.eof.set()
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                request = RawRequest(head, body)
                connection.requests.append(request)
                await self.handler(connection, request)
                if not connection.closed_by_server:
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            connection.eof.set()
        finally:
            if connection.closed_by_server:
                writer.close()


async def wait_for_eof(connection: RawConnection, timeout_s: float = 2.0) -> None:
    """Wait until the client closed ``connection``; TimeoutError when it did not."""
    await asyncio.wait_for(connection.eof.wait(), timeout_s)


# What the HTTP client's tests share: the client's timeout, an answer body longer than the
# prefix the client keeps, and a time limit on each test's asyncio code.
TIMEOUT_S = 2.0
BODY = bytes(range(256)) * 3 + b"tail"  # 772 bytes, the prefix is not the whole body


def run(coro, limit_s: float = 5.0):
    """Run one test's asyncio code; a hang fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(coro, limit_s))
