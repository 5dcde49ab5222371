"""A refused NaN or Infinity is pointed at where it stands (issue 14's new-user pass: the Flows
page said 'line 1 column 1' for a NaN at column 37 of the steps)."""

import json

import pytest

from apps.sessions.validation import loads_json


@pytest.mark.parametrize(
    ("text", "name", "line", "column"),
    [
        ('[{"endpoint": "login", "think_time_s": NaN}]', "NaN", 1, 40),
        ('{"a": "NaN Infinity", "b": -Infinity}', "-Infinity", 1, 28),
        ('{"x":\n  Infinity}', "Infinity", 2, 3),
    ],
)
def test_a_refused_constant_is_pointed_at(text, name, line, column):
    with pytest.raises(json.JSONDecodeError) as caught:
        loads_json(text)
    assert caught.value.msg == f"{name} is not a number JSON allows"
    assert (caught.value.lineno, caught.value.colno) == (line, column)


def test_another_problem_keeps_its_position():
    with pytest.raises(json.JSONDecodeError) as caught:
        loads_json('{"a": 1,\n "b": }')
    assert (caught.value.lineno, caught.value.colno) == (2, 7)
