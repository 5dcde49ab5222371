"""A real HTTP server on 127.0.0.1 that counts every request on arrival: the tests' truth.

It runs aiohttp on its own event loop in a background thread, so the test process can read
its counts at any moment while real worker processes send it load.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiohttp import web


class CountingServer:
    """Counts requests per path the moment their headers arrive, then answers.

    ``delay_s`` delays every answer; ``statuses`` maps a path to the status it answers with;
    ``redirects`` maps a path to where it redirects; paths in ``echoes`` answer with the
    request itself (body, query, headers), as some error pages do; ``bodies`` maps a path to
    the text it answers with (JSON if it parses as JSON), ``headers`` to extra headers, and
    ``delays`` to its own delay (instead of ``delay_s``).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.counts: Counter[str] = Counter()
        self.delay_s = 0.0
        self.statuses: dict[str, int] = {}
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.echoes: set[str] = set()
        self.bodies: dict[str, str] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.delays: dict[str, float] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    async def _handle(self, request: web.Request) -> web.Response:
        with self._lock:
            self.counts[request.path] += 1
        if request.path in self.echoes:
            echoed = "".join(f"{name}: {value}\n" for name, value in request.headers.items())
            text = f"{await request.text()}\n{request.query_string}\n{echoed}"
            return web.Response(status=self.statuses.get(request.path, 200), text=text)
        delay_s = self.delays.get(request.path, self.delay_s)
        if delay_s:
            await asyncio.sleep(delay_s)
        if request.path in self.redirects:
            return web.Response(status=302, headers={"Location": self.redirects[request.path]})
        text = self.bodies.get(request.path, "ok")
        return web.Response(
            status=self.statuses.get(request.path, 200),
            text=text,
            content_type="application/json" if text.startswith(("{", "[")) else "text/plain",
            headers=self.headers.get(request.path),
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def start(self) -> CountingServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        # Handlers still sleeping on a long delay: cancel them rather than leak them.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1: keeps every request it gets (path, headers, raw
    body) and answers with the next status of ``statuses`` (200 once they run out)."""

    def __init__(self, statuses=()) -> None:
        self.statuses = list(statuses)
        self.received: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [item for item in self.received if path is None or item["path"] == path]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
