"""Reading a data feed's CSV: good files give their columns and rows as written; every bad
or hostile one is refused with a message that names the line (or limit) and the fix."""

import pytest
from django.test import override_settings

from apps.sessions.catalog.feed_csv import FeedError, parse_feed_csv


def refusal(data: bytes, **limits) -> str:
    with pytest.raises(FeedError) as caught:
        parse_feed_csv(data, **limits)
    return str(caught.value)


def test_a_plain_file_gives_its_columns_and_rows():
    columns, rows = parse_feed_csv(b"username,password\nalice,a1\nbob,b2\n")
    assert columns == ["username", "password"]
    assert rows == [["alice", "a1"], ["bob", "b2"]]


def test_a_byte_order_mark_crlf_blank_lines_and_no_final_newline_are_fine():
    columns, rows = parse_feed_csv(b"\xef\xbb\xbfid,name\r\n1,a\r\n\r\n2,b")
    assert columns == ["id", "name"]
    assert rows == [["1", "a"], ["2", "b"]]


def test_quotes_commas_line_breaks_and_unicode_survive_as_written():
    data = 'id,text\n1,"Smith, John"\n2,"say ""hi"""\n3,"two\nlines"\n4,日本語 🚀\n'.encode()
    _, rows = parse_feed_csv(data)
    assert rows == [["1", "Smith, John"], ["2", 'say "hi"'], ["3", "two\nlines"],
                    ["4", "日本語 🚀"]]  # fmt: skip


def test_spaces_around_header_names_are_dropped_but_values_keep_theirs():
    columns, rows = parse_feed_csv(b" id , name\n1, a \n")
    assert columns == ["id", "name"] and rows == [["1", " a "]]


def test_a_row_with_the_wrong_number_of_fields_names_its_line():
    message = refusal(b"a,b,c,d\n1,2,3,4\n\n1,2,3\n")
    assert message.startswith("Line 4 has 3 fields; the header has 4 (a, b, c, d).")


def test_the_line_of_a_row_after_a_multi_line_value_is_its_first_line():
    message = refusal(b'a,b\n1,"x\ny"\n1\n')
    assert message.startswith("Line 4 has 1 field; the header has 2")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "The file is empty"),
        (b"\n\n  \n", "The file is empty"),
        (b"username,password\n", "only a header row (username, password)"),
        (b"id,id\n1,2\n", "column 2 ('id') has the same name as column 1"),
        (b"id,,x\n1,2,3\n", "column 2 has no name"),
        (b"id,user name\n1,2\n", "column 2 ('user name') is not a usable name"),
        (b"1st\nx\n", "column 1 ('1st') is not a usable name"),
        (b"feed.id\nx\n", "column 1 ('feed.id') is not a usable name"),
        ("naïve\nx\n".encode(), "is not a usable name"),
        (("a" * 51 + "\nx\n").encode(), "at most 50"),
        (b'a,b\n1,"unterminated\n', "Line 2: not valid CSV"),
        (b'a,b\n1,"x"y\n', "Line 2: not valid CSV"),
    ],
)
def test_bad_files_are_refused_saying_what_is_wrong(data, expected):
    assert expected in refusal(data)


def test_fifty_columns_are_fine_fifty_one_are_not():
    header = ",".join(f"c{i}" for i in range(50))
    columns, _ = parse_feed_csv(f"{header}\n{','.join('v' * 50)}\n".encode())
    assert len(columns) == 50
    message = refusal(f"{header},c50\n{','.join('v' * 51)}\n".encode())
    assert message == "Line 1 (the header) has 51 columns; a data feed may have at most 50."


def test_binary_and_other_encodings_are_refused():
    assert "NUL byte (at byte 4)" in refusal(b"id\n\x00\x01\x02")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    assert "NUL byte" in refusal(png)
    latin1 = "id,name\n1,café\n".encode("latin-1")
    assert refusal(latin1).startswith("Line 2 is not UTF-8 text (byte 14)")


def test_size_and_row_limits_name_the_setting():
    data = b"id\n" + b"1\n" * 100
    assert "at most 100 bytes (FEED_MAX_BYTES)" in refusal(data, max_bytes=100)
    message = refusal(data, max_rows=99)
    assert message == (
        "More than 99 rows (line 101); a data feed may have at most 99 (FEED_MAX_ROWS)."
    )
    assert len(parse_feed_csv(data, max_rows=100)[1]) == 100


@override_settings(FEED_MAX_BYTES=2**20)
def test_a_ten_megabyte_file_is_refused_by_size_before_reading_it():
    message = refusal(b"id\n" + b"x" * 10 * 2**20)
    assert message.startswith("The file is 10,485,763 bytes; a data feed may be at most 1,048,576")


def test_a_megabyte_line_is_refused_naming_the_line():
    data = b"id,blob\n1,ok\n2," + b"y" * 2**20 + b"\n"
    message = refusal(data, max_bytes=4 * 2**20)
    assert message.startswith("Line 3: a value is longer than 131,072 characters")


def test_a_megabyte_header_is_refused_too():
    assert "Line 1" in refusal(b"a" * 2**20 + b"\nx\n", max_bytes=4 * 2**20)


@override_settings(FEED_MAX_ROWS=3)
def test_the_row_limit_defaults_to_the_setting():
    assert "at most 3 (FEED_MAX_ROWS)" in refusal(b"id\n1\n2\n3\n4\n")
