"""Regular expressions bounded before they are compiled (issue 22, item 2): nested counts
that would unroll into hundreds of megabytes are refused by the extraction parser, which is
both the control plane's validator and the shard's compiler; ordinary patterns pass."""

import subprocess
import sys
import time

import pytest

from apps.workers.extraction import parse_extractions
from apps.workers.pattern_size import UNITS_MAX, PatternTooLarge, pattern_units
from apps.workers.plan import FlowPlan, StepPlan
from apps.workers.preparation import prepare_endpoints

from ..support.engine import plan_for

HOSTILE = [
    "(?:(?:a{1000}){100}){11}",  # 1.1 million steps, about 300 MB in regex.compile
    "(?:(?:a{1000}){100}){13}",
    "a{1000}{1000}{10}",
    "(?:(?:a){1000}){1000}",
    "(?:ab){50000,}",  # the lower bound is unrolled too
    "(?:a|b){65535}",
    "(?:[a-z]{1,1000}){1,1000}",
    "(?#\\)comment)(?:(?:a{1000}){1000})",
    "(?x)(?:(?:a{1000}) {1000})",  # verbose: the count applies across the space
    "(?V1)[[a](](?:a{10})",
]

ORDINARY = [
    'value="([0-9a-f]+)"',
    'name="\\w+"',
    "order=(\\d+)",
    '"token":\\s*"([^"]{1,4096})"',
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "(?i)csrf[_-]token=([\\w-]{16,128})",
    "(?P<id>\\d{1,9})",
    "\\p{L}{3}[[:alpha:]]{2}\\N{DIGIT ONE}",
    "(?:(?:a{100}){100})",
    "(a|aa)+$",
]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_a_pattern_that_would_compile_huge_is_refused_before_compiling(pattern):
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"extract\[0\]\.regex: ") as refused:
        parse_extractions([{"name": "token", "regex": pattern}])
    assert time.monotonic() - started < 0.05  # nothing was compiled
    assert "not a regular expression" not in str(refused.value)


def test_the_message_names_the_limit():
    with pytest.raises(ValueError) as refused:
        parse_extractions([{"name": "token", "regex": "(?:(?:a{1000}){100}){11}"}])
    assert f"more than {UNITS_MAX:,} steps" in str(refused.value)


@pytest.mark.parametrize("pattern", ORDINARY)
def test_ordinary_patterns_are_accepted(pattern):
    (extraction,) = parse_extractions([{"name": "token", "regex": pattern}])
    assert extraction.pattern is not None


@pytest.mark.parametrize(
    ("pattern", "units"),
    [
        ("abc", 3),
        ("a{10}", 10),
        ("(?:ab){10}", 20),
        ("(?:a{10}b){10}", 110),
        ("[^]x]{5}", 5),
        ("\\{5}", 3),  # an escaped brace is a literal
        ("a{,7}", 7),
        ("(?:a{100}){100}", UNITS_MAX),
    ],
)
def test_units_count_atoms_times_their_counts(pattern, units):
    assert pattern_units(pattern) == units


def test_a_pattern_at_the_limit_compiles_in_a_few_megabytes():
    """The bound is about memory: 10,000 steps in a fresh process, measured."""
    script = (
        "import regex, resource\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "regex.compile('(?:a{100}){100}')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    grown_kb = int(subprocess.check_output([sys.executable, "-c", script], timeout=60))
    assert grown_kb < 20_000


def test_an_unbalanced_parenthesis_is_refused_not_miscounted():
    with pytest.raises(PatternTooLarge):
        pattern_units("a)(?:a{1000}){1000}")


def test_a_shard_preparing_a_plan_applies_the_same_bound():
    """A plan read from Redis was checked by the control plane, but the engine compiles its
    patterns itself: a plan carrying a hostile one is refused before anything is compiled."""
    extract = ({"name": "token", "regex": HOSTILE[0]},)
    plan = plan_for(
        [("login", "http://127.0.0.1:9/login")],
        flows=(FlowPlan(name="shop", weight=1.0, steps=(StepPlan(0, extract=extract),)),),
    )
    started = time.monotonic()
    with pytest.raises(ValueError, match="its repetitions are too large"):
        prepare_endpoints(plan, session_id=1, check_body_limit=2**20)
    assert time.monotonic() - started < 0.05
