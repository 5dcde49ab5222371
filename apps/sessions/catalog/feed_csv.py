"""Reading a data feed: a CSV file with a header row of column names, then rows of values.

A pure function, so every edge (API, admin, dashboard, CLI, catalog file) refuses the same
files with the same words: each message says what is wrong, where (the line, the column) and
what would be right, since the person reading it has a spreadsheet to fix, not a traceback.
Values stay strings, exactly as written (quotes removed): the templates render them as text.
"""

from __future__ import annotations

import csv
import io
import re

from django.conf import settings

# Column names become ``feed.<name>`` in templates: identifiers, as the template language
# reads them.
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
COLUMNS_MAX = 50
COLUMN_NAME_CHARS_MAX = 50
PREVIEW_ROWS = 5


class FeedError(ValueError):
    """The file cannot be a data feed; the message says why, where, and what to do."""


def parse_feed_csv(
    data: bytes, *, max_bytes: int | None = None, max_rows: int | None = None
) -> tuple[list[str], list[list[str]]]:
    """The columns and data rows of a CSV file, or ``FeedError``.

    UTF-8 (a byte-order mark is tolerated), one header row of unique identifiers (at most
    ``COLUMNS_MAX``), every row with as many fields as the header, at least one row; blank
    lines are skipped. ``max_bytes`` and ``max_rows`` default to FEED_MAX_BYTES and
    FEED_MAX_ROWS.
    """
    max_bytes = settings.FEED_MAX_BYTES if max_bytes is None else max_bytes
    max_rows = settings.FEED_MAX_ROWS if max_rows is None else max_rows
    if len(data) > max_bytes:
        raise FeedError(
            f"The file is {len(data):,} bytes; a data feed may be at most {max_bytes:,} bytes "
            "(FEED_MAX_BYTES). Keep fewer rows, or ask the operator to raise the limit."
        )
    if not data.strip():
        raise FeedError(
            "The file is empty: give a header row of column names (e.g. username,password), "
            "then at least one row of values."
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FeedError(
            f"The file holds a NUL byte (at byte {nul + 1:,}): it looks like a binary file, not "
            "CSV text. Export it from your spreadsheet as CSV (UTF-8)."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FeedError(
            f"Line {line} is not UTF-8 text (byte {exc.start + 1:,}). Save the file as CSV UTF-8."
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns: list[str] | None = None
    rows: list[list[str]] = []
    line = 1  # where the record being read starts (a quoted value may span lines)
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or record == [""]:
                continue  # a blank line
            if columns is None:
                columns = _check_header(record, start)
                continue
            if len(record) != len(columns):
                raise FeedError(
                    f"Line {start} has {len(record)} field{'s' * (len(record) != 1)}; the "
                    f"header has {len(columns)} ({', '.join(columns)[:200]}). Quote values "
                    'that contain commas ("Smith, John").'
                )
            if len(rows) >= max_rows:
                raise FeedError(
                    f"More than {max_rows:,} rows (line {start}); a data feed may have at most "
                    f"{max_rows:,} (FEED_MAX_ROWS)."
                )
            rows.append(record)
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise FeedError(
                f"Line {line}: a value is longer than {csv.field_size_limit():,} characters; "
                "a feed's values are for requests (names, ids, tokens), not documents."
            ) from exc
        raise FeedError(
            f"Line {line}: not valid CSV ({exc}). Values with commas, quotes or line breaks "
            'must be in double quotes, and a quote inside one doubled ("say ""hi""").'
        ) from exc
    if columns is None:
        raise FeedError("The file has no header row: give column names, then rows of values.")
    if not rows:
        raise FeedError(
            f"The file has only a header row ({', '.join(columns)[:200]}): add at least one "
            "row of values."
        )
    return columns, rows


def _check_header(record: list[str], line: int) -> list[str]:
    names = [name.strip() for name in record]
    if len(names) > COLUMNS_MAX:
        raise FeedError(
            f"Line {line} (the header) has {len(names)} columns; a data feed may have at most "
            f"{COLUMNS_MAX}."
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise FeedError(
                f"Line {line} (the header): column {position} has no name. Every column needs "
                "one: templates read it as {{ feed.<name> }}."
            )
        if len(name) > COLUMN_NAME_CHARS_MAX or not COLUMN_NAME.match(name):
            raise FeedError(
                f"Line {line} (the header): column {position} ('{name[:60]}') is not a usable "
                f"name: use letters, digits and _ (at most {COLUMN_NAME_CHARS_MAX}), not "
                "starting with a digit, e.g. user_name; templates read it as "
                "{{ feed.<name> }}."
            )
        if name in seen:
            raise FeedError(
                f"Line {line} (the header): column {position} ('{name}') has the same name as "
                f"column {seen[name]}; names must be unique."
            )
        seen[name] = position
    return names
