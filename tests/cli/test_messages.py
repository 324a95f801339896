"""The CLI's message helpers: an error's first line, aligned table columns."""

from doge.errors import first_line


def test_first_line_is_the_message_or_the_type_name():
    assert first_line(ValueError("  bad thing\nmore detail\n")) == "bad thing"
    assert first_line(KeyError()) == "KeyError"


def test_table_lines_align_columns():
    from doge.cli.context import table_lines

    assert table_lines([["a", "long value"], ["bbb", "x"]], ["K", "V"]) == [
        "K    V",
        "a    long value",
        "bbb  x",
    ]
