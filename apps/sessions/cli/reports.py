"""What a headless run leaves behind: the summary table it prints, a JUnit file for the CI's
test report (one test case per threshold), and the results as JSON or CSV (the API's export).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from django.core.serializers.json import DjangoJSONEncoder

from apps.sessions.api.export import CSVRenderer, export_document, export_rows
from apps.sessions.models import LoadTestSession
from apps.sessions.results import units
from apps.sessions.results.comparison import METRICS
from apps.sessions.results.figures import figures_by_scope

EXPORT_SUFFIXES = (".json", ".csv")
HEADINGS = {"rps": "requests/s", "error_rate": "error %", "p50_ms": "p50 ms",
            "p95_ms": "p95 ms", "p99_ms": "p99 ms"}  # fmt: skip
REPORT_SUFFIXES = (".html", ".htm")
OUTCOME_WORDS = {True: "PASS", False: "FAIL", None: "NOT JUDGED"}


def _number(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def observed_text(result: dict) -> str:
    """A verdict's observed figure with its unit ("9.82 ms", "2.1 %", "42.5 requests/s")."""
    observed = result["observed"]
    if observed is None:
        return result.get("note") or "nothing to judge on"
    return units.figure(result["metric"], observed)


def summary(session: LoadTestSession) -> str:
    """The table a person reads at the end of a run: per endpoint and in all, then each
    threshold's verdict."""
    figures = figures_by_scope(session)
    header = ("endpoint", "requests", "failures", "error %", "requests/s", "mean ms", "p50 ms",
              "p95 ms", "p99 ms", "max ms")  # fmt: skip
    scopes = [(name, scoped) for name, scoped in figures.items() if name is not None]
    scopes.append(("(all)", figures[None]))
    rows = []
    for name, scoped in scopes:
        rate = scoped.observe("error_rate")
        rows.append(
            (
                str(name)[:40],
                _number(scoped.requests),
                _number(scoped.failures),
                _number(rate * 100 if rate is not None else None, 2),
                _number(scoped.observe("rps")),
                _number(scoped.mean_ms),
                _number(scoped.p50_ms),
                _number(scoped.p95_ms),
                _number(scoped.p99_ms),
                _number(scoped.max_ms),
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    whole = figures[None]
    out = [
        f"Session {session.pk} '{session.session_name}': {session.status}, "
        f"{session.get_end_reason_display() or 'no end reason'}"
        + (f" ({session.end_detail})" if session.end_detail else "")
        + f", {session.duration_s():.1f} s of load",
        "",
        line(header),
        *(line(row) for row in rows),
    ]
    if whole.cut_by_stop or whole.unreached:
        # Part of "requests", counted apart: what the target received, and what the stop cut.
        out += [
            "",
            f"Counted apart: {_number(whole.cut_by_stop)} cut by the stop (not failures), "
            f"{_number(whole.unreached)} never reached the target (refused, connect timeout, "
            f"DNS); the target received {_number(whole.requests - whole.unreached)} requests.",
        ]
    results = session.threshold_results or []
    if results:
        out += ["", "Thresholds:"]
        width = max(len(result["expression"]) for result in results)
        for result in results:
            out.append(
                f"  {OUTCOME_WORDS[result['passed']]:<4}  {result['expression']:<{width}}  "
                f"observed {observed_text(result)}"
                + ("  (stopped the session)" if result["aborted"] else "")
            )
    return "\n".join(out)


def baseline_table(against: dict) -> str:
    """A run's figures against its baseline's, scope by scope: each value with its change
    in percent (``!`` where it regressed), then the regressions in words."""
    header = ("endpoint", "requests", *(HEADINGS[metric] for metric in METRICS))
    rows = []
    for scope in against["endpoints"]:
        figures = scope["figures"]
        name = "(all)" if scope["endpoint"] is None else str(scope["endpoint"])[:40]
        cells = [name, _number(figures["requests"]) if figures else "-"]
        for metric in METRICS:
            value = figures[metric] if figures else None
            text = _number(value * 100 if metric == "error_rate" and value is not None
                           else value, 2 if metric == "error_rate" else 1)  # fmt: skip
            change = (scope["deltas"] or {}).get(metric)
            if change and change["relative"] is not None:
                text += f" ({change['relative']:+.1%})"
            elif change and change["absolute"]:
                text += " (from 0)"
            if metric in scope["regressed"]:
                text += " !"
            cells.append(text)
        rows.append(cells)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        f"Against baseline #{against['baseline']} '{against['baseline_name']}' (regression: "
        f"worse by more than {against['margin_pct']:g} %, ! marks one):",
        "",
    ]
    for cells in [header, *rows]:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
    if against["differences"]:
        lines += ["", "Configuration (baseline → this run):"]
        for difference in against["differences"]:
            baseline_text, this_text = (value["text"] for value in difference["values"])
            lines.append(f"  {difference['label']}: {baseline_text} → {this_text}")
    if not against["same_load"]:
        lines += [
            "",
            f"Not judged against the baseline: {against['verdict_reason']}.",
        ]
        return "\n".join(lines)
    lines += [
        f"{'(all)' if scope['endpoint'] is None else scope['endpoint']}: {scope['note']}"
        for scope in against["endpoints"]
        if scope["note"]
    ]
    if against["regressions"]:
        lines += ["", "Regressions:", *(f"  {entry['text']}" for entry in against["regressions"])]
    elif not against["judged"]:
        lines += ["", f"Not judged against the baseline: fewer than {against['min_requests']} "
                      "requests in one of the runs (run longer or with more users)."]  # fmt: skip
    else:
        lines += ["", "No regression against the baseline."]
    return "\n".join(lines)


def write_junit(path: Path, session: LoadTestSession, problem: str = "") -> None:
    """One test case per threshold (failed: a <failure> with the observed value); a session
    that could not run is one more test case, with an <error>."""
    results = (session.threshold_results or []) if session is not None else []
    suite = ET.Element("testsuite", name=f"loadtest session {getattr(session, 'pk', '-')}")
    failures = errors = 0
    elapsed = session.duration_s() if session is not None else 0.0
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="loadtest.thresholds",
            name=result["expression"],
            time=f"{elapsed:.3f}",
        )
        if not result["passed"]:
            failures += 1
            message = f"{result['expression']}: observed {observed_text(result)}"
            ET.SubElement(case, "failure", message=message, type="threshold").text = message
    if problem:
        errors += 1
        case = ET.SubElement(suite, "testcase", classname="loadtest.session", name="session run")
        ET.SubElement(case, "error", message=problem, type="session").text = problem
    suite.set("tests", str(len(results) + (1 if problem else 0)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("time", f"{elapsed:.3f}")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_export(path: Path, session: LoadTestSession) -> None:
    """The API's export: the whole session as JSON, or the per-endpoint table as CSV."""
    if path.suffix.lower() == ".csv":
        path.write_bytes(CSVRenderer().render(export_rows(session, "endpoints")))
        return
    document = export_document(session)
    path.write_text(json.dumps(document, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False))


def check_report_path(path: Path) -> str:
    """Why the HTML report cannot be written at ``path``; "" when it can."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        return f"--report {path}: must end in .html."
    if not path.parent.is_dir():
        return f"{path}: its directory {path.parent} does not exist."
    return ""
