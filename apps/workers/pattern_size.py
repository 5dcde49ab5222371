"""How large a regular expression becomes once compiled, bounded before it is compiled.

The ``regex`` module (like ``re``) unrolls counted repetitions when it compiles a pattern:
``(?:(?:a{1000}){100}){11}`` becomes a program of 1.1 million steps and about 300 MB, taken
from the process that compiles it and not given back to the system. A pattern's timeout
cannot help: the cost is paid before it runs. So every pattern a user writes is measured
here first, by a small reader of its structure (groups, classes, escapes, counts), and
refused when its repetition counts multiplied through their nesting pass ``UNITS_MAX``.

The reader errs towards counting too much: a construct it does not model is counted as a
literal, each count as its larger bound. The verbose flag (``x``) and version 1 (``V1``,
nested sets) change what a ``#``, a space or a ``[`` mean, and so where groups end; rather
than model them, patterns that turn them on are refused.
"""

from __future__ import annotations

import re

# 10,000 steps compile to about 3 MB; a plain pattern of the longest length, 500 characters,
# is 500 steps.
UNITS_MAX = 10_000
_COUNT = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")
_FLAGS = re.compile(r"\(\?[A-Za-z0-9-]*(?::|\))")
_GLOBAL_FLAGS = re.compile(r"\(\?[A-Za-z0-9-]*\)")  # (?i): no group
# What follows a group's "(" before its contents: (?:, (?P<name>, (?=, (?<!, (?i:, ...
_GROUP_HEAD = re.compile(r"\?(?:P?<\w+>|P?'\w+'|<[=!]|[:=!>|]|[A-Za-z0-9-]*:)")
_REFUSED_FLAG = re.compile(r"x|V1")
_BRACED_ESCAPES = frozenset("pPN")  # \p{Greek}, \N{DIGIT ONE}


class PatternTooLarge(ValueError):
    """A pattern whose compiled size would pass ``UNITS_MAX``, or that turns on a flag the
    reader does not model."""


def pattern_units(pattern: str) -> int:
    """The steps ``pattern`` compiles to, at most: each atom one, a group the sum of its
    parts, a counted repetition its part times its larger bound. PatternTooLarge as soon as
    the count passes ``UNITS_MAX`` (so a pattern of many nested counts stops early)."""
    for found in _FLAGS.finditer(pattern):
        if _REFUSED_FLAG.search(found.group()[2:]):
            raise PatternTooLarge(
                "the x (verbose) and V1 flags are not accepted; write the pattern without them."
            )
    # A stack of open groups: the units of each so far, and of its last item (what a count
    # after it repeats).
    totals: list[int] = [0]
    last: list[int] = [0]
    index, length = 0, len(pattern)

    def add(units: int) -> None:
        totals[-1] += units
        last[-1] = units
        _bounded(totals[0] + sum(totals[1:]))

    while index < length:
        char = pattern[index]
        if char == "\\":
            end = index + 2
            if pattern[index + 1 : index + 2] in _BRACED_ESCAPES and pattern[end : end + 1] == "{":
                closing = pattern.find("}", end)
                end = length if closing < 0 else closing + 1
            add(1)
            index = end
        elif char == "[":
            index = _class_end(pattern, index)
            add(1)
        elif char == "(":
            if pattern.startswith("(?#", index):
                index = _comment_end(pattern, index)
                continue
            if flags := _GLOBAL_FLAGS.match(pattern, index):
                index = flags.end()
                continue
            totals.append(0)
            last.append(0)
            head = _GROUP_HEAD.match(pattern, index + 1)
            index = head.end() if head else index + 1
        elif char == ")":
            if len(totals) == 1:
                raise PatternTooLarge("an unbalanced ')'.")
            units = totals.pop()
            last.pop()
            add(max(units, 1))
            index += 1
        elif char == "{" and (count := _COUNT.match(pattern, index)):
            low, comma, high = count.groups()
            times = max(int(low or 0), int(high or 0) if comma else int(low or 0), 1)
            totals[-1] += last[-1] * (times - 1)
            last[-1] *= times
            _bounded(totals[0] + sum(totals[1:]))
            index = count.end()
        elif char in "*+?":
            index += 1  # a loop, not unrolled; also the lazy and possessive marks
        else:
            add(1)
            index += 1
    return sum(totals)


def check_pattern_size(pattern: str) -> None:
    """PatternTooLarge unless ``pattern`` compiles to at most ``UNITS_MAX`` steps."""
    pattern_units(pattern)


def _bounded(units: int) -> None:
    if units > UNITS_MAX:
        raise PatternTooLarge(
            f"its repetitions are too large: counts multiplied through their nesting come to "
            f"more than {UNITS_MAX:,} steps; use +, * or smaller counts."
        )


def _class_end(pattern: str, index: int) -> int:
    """Where the class opened at ``index`` ends: past its ``]`` (a ``]`` first in the class
    is a member, and so is an escaped one; ``[:alpha:]`` is a member)."""
    index += 1
    if pattern.startswith("^", index):
        index += 1
    if pattern.startswith("]", index):
        index += 1
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
        elif char == "[" and pattern.startswith("[:", index):
            closing = pattern.find(":]", index + 2)
            index = index + 1 if closing < 0 else closing + 2
        elif char == "]":
            return index + 1
        else:
            index += 1
    return index


def _comment_end(pattern: str, index: int) -> int:
    """Past the ``)`` of the comment opened at ``index``; like ``regex``, a ``\\)`` does not
    end it."""
    index += 3
    while index < len(pattern):
        if pattern[index] == "\\":
            index += 2
        elif pattern[index] == ")":
            return index + 1
        else:
            index += 1
    return index
