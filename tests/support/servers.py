"""A real HTTP server on 127.0.0.1 that counts every request on arrival: the tests' truth.

It runs aiohttp on its own event loop in a background thread, so the test process can read
its counts at any moment while real worker processes send it load.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from aiohttp import web


class CountingServer:
    """Counts requests per path the moment their headers arrive, then answers.

    ``delay_s`` delays every answer; ``statuses`` maps a path to the status it answers with;
    ``redirects`` maps a path to where it redirects; paths in ``echoes`` answer with the
    request itself (body, query, headers), as some error pages do. Each header named in
    ``watched`` has its value (None: absent) kept for every request, in arrival order;
    ``bodies`` maps a path to the text it answers with (JSON if it parses as JSON),
    ``headers`` to extra headers, and ``delays`` to its own delay (instead of ``delay_s``):
    seconds, or a function that gives them for each request (a spread of latencies).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.counts: Counter[str] = Counter()
        self.delay_s = 0.0
        self.statuses: dict[str, int] = {}
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.echoes: set[str] = set()
        self.watched: dict[str, list[str | None]] = {}
        self.bodies: dict[str, str] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.delays: dict[str, float | Callable[[], float]] = {}
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

    def watch(self, *names: str) -> None:
        """Keep the value of these headers for every request from now on."""
        with self._lock:
            for name in names:
                self.watched[name] = []

    def seen(self, name: str) -> tuple[int, list[str | None]]:
        """The requests counted so far and the watched header's values (counted together)."""
        with self._lock:
            return sum(self.counts.values()), list(self.watched[name])

    async def _handle(self, request: web.Request) -> web.Response:
        with self._lock:
            self.counts[request.path] += 1
            for name, values in self.watched.items():
                values.append(request.headers.get(name))
        if request.path in self.echoes:
            echoed = "".join(f"{name}: {value}\n" for name, value in request.headers.items())
            text = f"{await request.text()}\n{request.query_string}\n{echoed}"
            return web.Response(status=self.statuses.get(request.path, 200), text=text)
        delay_s = self.delays.get(request.path, self.delay_s)
        if callable(delay_s):
            delay_s = delay_s()
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


class _ThreadedServer:
    """A stdlib HTTP server on 127.0.0.1 (a free port) in a daemon thread: ``start``/``stop``."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class WebhookReceiver(_ThreadedServer):
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

        self._serve(Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [item for item in self.received if path is None or item["path"] == path]


class NewRelicStandIn(_ThreadedServer):
    """New Relic's NerdGraph and Event API on 127.0.0.1, checking what it is sent as the real
    ones would: method, path, key header, content type, a GraphQL body naming the marker
    mutation with the entity's GUID, version and description, an Event API body that is a
    gzipped JSON array of events with an eventType and numeric figures.

    Well-formed requests are kept (``markers``: the deployment inputs; ``events``) and
    answered as New Relic does; anything else is kept in ``refused`` with why, and answered
    with 400 (401 for a wrong key). ``fail_with`` makes every answer that status instead.
    """

    NUMERIC = ("sessionId", "users", "requests", "failures", "rps", "errorRate", "p95Ms",
               "totalRequests", "totalFailures", "intervalSeconds", "timestamp")  # fmt: skip

    def __init__(self, *, api_key: str, license_key: str, account_id: str, entity_guid: str):
        self.api_key, self.license_key = api_key, license_key
        self.account_id, self.entity_guid = account_id, entity_guid
        self.markers: list[dict] = []
        self.events: list[dict] = []
        self.refused: list[str] = []
        self.fail_with: int | None = None
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = stand_in._handle(self.path, self.headers, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                with stand_in._lock:
                    stand_in.refused.append(f"GET {self.path}")
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._serve(Handler)

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/accounts/{self.account_id}/events"

    def _handle(self, path: str, headers, body: bytes) -> tuple[int, dict]:
        with self._lock:
            if self.fail_with is not None:
                return self.fail_with, {"error": "stand-in told to fail"}
            if path == "/graphql":
                problem, status = self._check_marker(headers, body)
            elif path == f"/v1/accounts/{self.account_id}/events":
                problem, status = self._check_events(headers, body)
            else:
                problem, status = f"unknown path {path}", 404
            if problem:
                self.refused.append(problem)
                return status, {"error": problem}
            if path == "/graphql":
                guid = self.markers[-1]["entityGuid"]
                deployment = {"deploymentId": f"d-{len(self.markers)}", "entityGuid": guid}
                return 200, {"data": {"changeTrackingCreateDeployment": deployment}}
            return 200, {"success": True, "uuid": f"u-{len(self.events)}"}

    def _check_marker(self, headers, body: bytes) -> tuple[str, int]:
        if headers.get("API-Key") != self.api_key:
            return "graphql: wrong or missing API-Key", 401
        if headers.get("Content-Type") != "application/json":
            return f"graphql: content type {headers.get('Content-Type')!r}", 400
        try:
            document = json.loads(body)
            query, deployment = document["query"], document["variables"]["deployment"]
        except (ValueError, KeyError, TypeError):
            return "graphql: not a JSON {query, variables: {deployment}} body", 400
        if not re.match(r"^\s*mutation\b", query) or "changeTrackingCreateDeployment(" not in query:
            return "graphql: not the changeTrackingCreateDeployment mutation", 400
        if "$deployment: ChangeTrackingDeploymentInput!" not in query:
            return "graphql: the deployment variable is not declared", 400
        if deployment.get("entityGuid") != self.entity_guid:
            return "graphql: wrong entityGuid", 400
        for name in ("version", "description", "user"):
            if not isinstance(deployment.get(name), str) or not deployment[name]:
                return f"graphql: {name} missing", 400
        if not isinstance(deployment.get("timestamp"), int):
            return "graphql: timestamp is not epoch milliseconds", 400
        self.markers.append(deployment)
        return "", 200

    def _check_events(self, headers, body: bytes) -> tuple[str, int]:
        if headers.get("Api-Key") != self.license_key:
            return "events: wrong or missing Api-Key", 401
        if headers.get("Content-Type") != "application/json":
            return f"events: content type {headers.get('Content-Type')!r}", 400
        if headers.get("Content-Encoding") == "gzip":
            try:
                body = gzip.decompress(body)
            except OSError:
                return "events: not gzip", 400
        try:
            events = json.loads(body)
        except ValueError:
            return "events: not JSON", 400
        if not isinstance(events, list) or not events:
            return "events: not a JSON array of events", 400
        for event in events:
            if not isinstance(event, dict) or not isinstance(event.get("eventType"), str):
                return "events: an event without eventType", 400
            numeric = self.NUMERIC if event["eventType"] == "LoadTestSummary" else ("timestamp",)
            for name in numeric:
                if name == "p95Ms" and name not in event:
                    continue  # no answer yet, no percentile
                value = event.get(name)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    return f"events: {name} is not a number ({value!r})", 400
        self.events.extend(events)
        return "", 200


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again as this returns: nobody listens there


class FullBacklogListener:
    """A listening socket whose accept queue is full and never served: the kernel completes no
    further handshake (Linux drops the SYNs), so every connection a client tries times out,
    as with a target that is too busy to accept. Nothing is ever accepted, so the target
    receives nothing: ``received`` is 0 by construction."""

    received = 0

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Connect until a handshake no longer completes: the queue is full from then on."""
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.3)
            try:
                filler.connect(("127.0.0.1", self.port))
            except OSError:
                filler.close()
                return self
            self._fillers.append(filler)
        raise RuntimeError("The listen backlog never filled up.")

    def stop(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()
