"""A small shop on 127.0.0.1 for the flow tests: a login that sets a session cookie and hands
out a token, a cart that demands both, and a log of who did what, in arrival order.

Like ``CountingServer`` it runs aiohttp on its own loop in a thread, so the test reads the
log while a shard sends load. Each request is logged as ``(user, what)`` where ``user`` is
the name the session cookie belongs to (``None`` without a valid cookie) and ``what`` one of
``login``, ``cart``, ``cart-refused``, ``view``, ``view-refused``.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from typing import Self

from aiohttp import web


class ShopServer:
    def __init__(self) -> None:
        self.log: list[tuple[str | None, str]] = []
        self.sessions: dict[str, tuple[str, str]] = {}  # cookie -> (user, token)
        self.token_in = "json"  # where the login's token is: json, html, header, nowhere
        self.cart_status = 201
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[tuple[str | None, str]]:
        with self._lock:
            return list(self.log)

    def _note(self, user: str | None, what: str) -> None:
        with self._lock:
            self.log.append((user, what))

    def _session(self, request: web.Request) -> tuple[str, str] | None:
        return self.sessions.get(request.cookies.get("shop_session", ""))

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = str(body.get("username"))
        cookie, token = secrets.token_hex(8), secrets.token_hex(8)
        self.sessions[cookie] = (user, token)
        self._note(user, "login")
        if self.token_in == "json":
            response = web.json_response({"csrf_token": token, "user": user})
        elif self.token_in == "html":
            response = web.Response(text=f'<input name="csrf" value="{token}">')
        elif self.token_in == "header":
            response = web.Response(text="ok", headers={"X-Csrf-Token": token})
        elif self.token_in == "a-run":  # a page that makes (a|aa)+$ backtrack for ever
            response = web.Response(text="a" * 20_000 + "!")
        else:
            response = web.json_response({"user": user})
        response.set_cookie("shop_session", cookie, httponly=True)
        return response

    async def _cart(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None or request.headers.get("X-CSRF-Token") != session[1]:
            self._note(session[0] if session else None, "cart-refused")
            return web.json_response({"error": "no session or wrong token"}, status=403)
        self._note(session[0], "cart")
        return web.json_response({"count": 1}, status=self.cart_status)

    async def _view(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            self._note(None, "view-refused")
            return web.json_response({"error": "no session"}, status=403)
        self._note(session[0], "view")
        return web.json_response({"items": [1]})

    def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/login", self._login)
        app.router.add_post("/cart/items", self._cart)
        app.router.add_get("/cart", self._view)
        self._thread.start()
        runner = web.AppRunner(app, access_log=None)

        async def serve() -> None:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(timeout=10)
        self._runner = runner
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
