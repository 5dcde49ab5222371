"""Serve the demo target: ``python -m demo_target [--host H] [--port P] [--db PATH]``.

Waitress rather than Flask's dev server because the point is to take load: it is threaded,
production-grade and pure Python, so it runs the same on every platform.
"""

import argparse
import logging
import os

import waitress

from demo_target.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo_target", description="Serve the deliberately slow demo target."
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    # argparse applies type=int to a string default too, so a bad $PORT is a clean usage error.
    parser.add_argument("--port", type=int, default=os.environ.get("PORT", "5001"))
    parser.add_argument("--db", help="SQLite path (default: $DEMO_DB_PATH or $DATA_DIR)")
    parser.add_argument("--threads", type=int, default=16, help="waitress worker threads")
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor (tests: 0.05)")
    args = parser.parse_args(argv)

    logging.basicConfig()  # As waitress.serve does: shows its warnings, e.g. queue depth.
    app = create_app(args.db, scale=args.scale)  # Fills the database before we listen.
    # create_server binds the socket, so the line below is only printed once it is true.
    server = waitress.create_server(app, host=args.host, port=args.port, threads=args.threads)
    port = getattr(server, "effective_port", args.port)  # The real one when --port 0.
    print(
        f"demo_target listening on http://{args.host}:{port} "
        f"(db {app.config['DEMO_DB_PATH']}, {args.threads} threads)",
        flush=True,
    )
    server.run()


if __name__ == "__main__":
    main()
