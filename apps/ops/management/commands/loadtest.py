"""``manage.py loadtest``: load tests without a browser, for CI and scripts.

- ``run --config FILE.yaml|FILE.json``: run a session on the real workers, judge its
  thresholds, print progress and a summary, write JUnit/JSON/CSV; exit 0 pass, 1 fail, 2 bad
  input or the session could not run;
- ``export-config SESSION_ID``: write a session's configuration as such a file;
- ``report SESSION_ID --output FILE.html``: write a session's self-contained HTML report;
- ``import-endpoints FILE``: load a target's catalog of endpoints;
- ``feed upload|show|delete TARGET``: a target's data feed (CSV).

Each subcommand is a thin shell over a module of ``apps.sessions.cli``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.sessions.choices import FeedMode
from apps.sessions.cli import catalog, feed_command
from apps.sessions.cli.config_file import export_config
from apps.sessions.cli.reports import check_report_path
from apps.sessions.cli.run import RunOptions, run
from apps.sessions.models import LoadTestSession
from apps.sessions.results.report import write_report


class Command(BaseCommand):
    help = "Headless load tests: run a config file, export a config, import endpoints."

    def add_arguments(self, parser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True)
        run_parser = commands.add_parser(
            "run",
            help="Run a session from a config file; exit 0 when every threshold passes, 1 "
            "when one fails, 2 for bad input or when the session could not run.",
        )
        run_parser.add_argument("--config", required=True, help="FILE.yaml, FILE.yml or FILE.json")
        run_parser.add_argument("--target", help="A target's base URL or name (beats the file's).")
        run_parser.add_argument(
            "--threshold",
            action="append",
            default=[],
            dest="thresholds",
            metavar="EXPR",
            help="Add a threshold, e.g. 'p95_ms < 500' (repeatable).",
        )
        run_parser.add_argument(
            "--abort-on-fail",
            action="store_true",
            help="Every threshold aborts the session as soon as it fails.",
        )
        run_parser.add_argument(
            "--export",
            action="append",
            default=[],
            dest="exports",
            metavar="OUT.json|OUT.csv",
            help="Write the results: the whole session as JSON, or the per-endpoint table as CSV.",
        )
        run_parser.add_argument("--junit", metavar="OUT.xml", help="One test case per threshold.")
        run_parser.add_argument(
            "--report", metavar="OUT.html", help="Write the HTML report (opens offline)."
        )
        run_parser.add_argument("--quiet", action="store_true", help="Print only errors.")
        run_parser.add_argument(
            "--user", dest="username", help="Act as this user (needs the operator role)."
        )
        run_parser.add_argument(
            "--baseline",
            nargs="?",
            const="target",
            metavar="ID",
            help="After the run, compare it with its target's baseline (or with session ID), "
            "print the deltas and exit 1 on a regression; without a baseline, say so.",
        )
        run_parser.add_argument(
            "--progress-interval",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="Seconds between progress lines when not on a terminal (default 5).",
        )
        export_parser = commands.add_parser(
            "export-config", help="Write a session's configuration as a config file."
        )
        export_parser.add_argument("session_id", type=int)
        export_parser.add_argument(
            "--format", choices=["yaml", "json"], default="yaml", help="Default: yaml."
        )
        export_parser.add_argument("--output", "-o", help="A file (default: standard output).")
        report_parser = commands.add_parser(
            "report", help="Write a session's HTML report (one self-contained file)."
        )
        report_parser.add_argument("session_id", type=int)
        report_parser.add_argument("--output", "-o", required=True, metavar="OUT.html")
        import_parser = commands.add_parser(
            "import-endpoints", help="Load a target and its endpoints from a catalog file."
        )
        import_parser.add_argument("file", help="A catalog file (examples/demo-endpoints.json).")
        import_parser.add_argument(
            "--target", help="The target's base URL (overrides the file's target.base_url)."
        )

        feed_parser = commands.add_parser(
            "feed", help="A target's data feed (CSV): upload, show or delete it."
        )
        feed_actions = feed_parser.add_subparsers(dest="feed_action", required=True)
        feed_upload = feed_actions.add_parser(
            "upload", help="Give the target this CSV file as its data feed (replacing any)."
        )
        feed_upload.add_argument("target", help="The target's id, base URL or name.")
        feed_upload.add_argument("file", help="A CSV file (UTF-8) with a header row.")
        feed_upload.add_argument(
            "--mode",
            choices=list(FeedMode.values),
            help="How rows are handed to users (default: keep the current mode; a new feed: "
            "sequential).",
        )
        for action, text in (("show", "Show the target's feed: columns, rows, mode, first "
                              "rows."), ("delete", "Remove the target's feed.")):  # fmt: skip
            feed_actions.add_parser(action, help=text).add_argument(
                "target", help="The target's id, base URL or name."
            )

    def handle(self, *args, **options) -> None:
        subcommand = options["subcommand"]
        if subcommand == "feed":
            self._feed(options)
            return
        if subcommand == "run":
            if not 0.1 <= options["progress_interval"] <= 3600:
                raise CommandError("--progress-interval: from 0.1 to 3600 seconds.", returncode=2)
            code = run(
                RunOptions(
                    config=options["config"],
                    target=options["target"],
                    thresholds=options["thresholds"],
                    abort_on_fail=options["abort_on_fail"],
                    exports=options["exports"],
                    junit=options["junit"],
                    report=options["report"],
                    quiet=options["quiet"],
                    username=options["username"],
                    progress_interval_s=options["progress_interval"],
                    baseline=options["baseline"],
                ),
                # The raw streams: Django's OutputWrapper ends every write with a newline,
                # which would break the progress bar's carriage returns.
                out=self.stdout._out,
                err=self.stderr._out,
            )
            sys.exit(code)
        if subcommand == "export-config":
            session = LoadTestSession.objects.filter(pk=options["session_id"]).first()
            if session is None:
                raise CommandError(f"No session {options['session_id']}.", returncode=2)
            text = export_config(session, as_yaml=options["format"] == "yaml")
            if options["output"]:
                with open(options["output"], "w", encoding="utf-8") as file:
                    file.write(text)
            else:
                self.stdout.write(text, ending="")
            return
        if subcommand == "report":
            session = LoadTestSession.objects.filter(pk=options["session_id"]).first()
            if session is None:
                raise CommandError(f"No session {options['session_id']}.", returncode=2)
            path = Path(options["output"])
            problem = check_report_path(path)
            if problem:
                raise CommandError(problem, returncode=2)
            write_report(path, session)
            self.stdout.write(f"Wrote {path} (session {session.pk}).")
            return
        try:
            report = catalog.import_endpoints(options["file"], options["target"])
        except catalog.CatalogError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        self.stdout.write(report)

    def _feed(self, options) -> None:
        try:
            if options["feed_action"] == "upload":
                text = feed_command.upload(options["target"], options["file"], options["mode"])
            elif options["feed_action"] == "show":
                text = feed_command.show(options["target"])
            else:
                text = feed_command.delete(options["target"])
        except feed_command.FeedCommandError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        self.stdout.write(text)
