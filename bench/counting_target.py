"""The counting target: counts every request on arrival and can delay its answer.

A separate process (pinned to its own core), so that what it measures is not disturbed by
the generator. Control routes under /__bench/ are not counted: ``stats`` (count, first and
last arrival, wall clock), ``reset``, and ``delay?ms=``.

    python -m bench.counting_target --port 18081
"""

import argparse
import asyncio
import json
import time

from aiohttp import web


class Counter:
    def __init__(self) -> None:
        self.reset()
        self.delay_s = 0.0

    def reset(self) -> None:
        self.count = 0
        self.first = None
        self.last = None
        # How busy the target was since the reset: a figure short of its prediction may be
        # the target's limit rather than the generator's.
        self.reset_at = time.monotonic()
        self.cpu_at_reset = time.process_time()

    def busy_percent(self) -> float:
        elapsed = time.monotonic() - self.reset_at
        return (time.process_time() - self.cpu_at_reset) / elapsed * 100 if elapsed else 0.0


def build_app(counter: Counter) -> web.Application:
    async def count(request: web.Request) -> web.Response:
        now = time.time()
        counter.count += 1
        if counter.first is None:
            counter.first = now
        counter.last = now
        if counter.delay_s:
            await asyncio.sleep(counter.delay_s)
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        body = {"count": counter.count, "first": counter.first, "last": counter.last,
                "now": time.time(), "cpu_percent": counter.busy_percent()}  # fmt: skip
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        counter.reset()
        return web.Response(text="{}", content_type="application/json")

    async def delay(request: web.Request) -> web.Response:
        counter.delay_s = float(request.query.get("ms", "0")) / 1000
        return web.Response(text="{}", content_type="application/json")

    app = web.Application()
    app.router.add_get("/__bench/stats", stats)
    app.router.add_post("/__bench/reset", reset)
    app.router.add_post("/__bench/delay", delay)
    app.router.add_route("*", "/{tail:.*}", count)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    # A deep accept queue: thousands of users connecting in one second must not overflow it
    # (an overflow drops the SYN and the client waits a second or more to try again).
    web.run_app(build_app(Counter()), host="127.0.0.1", port=args.port, access_log=None,
                backlog=4096,
                print=lambda *_: print(f"counting target on {args.port}", flush=True))  # fmt: skip


if __name__ == "__main__":
    main()
