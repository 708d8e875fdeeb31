"""Reading a list of phones an operator hands in: CSV with a header row or one phone per line,
normalised as a lead's phone is, every bad line with its number and its value masked."""

from __future__ import annotations

from lead_load.core.phone_lists import BadLine, ListedPhone, read_phone_list


def test_a_csv_with_a_header_row_uses_its_phone_and_reason_columns():
    found = read_phone_list(
        [
            "name,PHONE,Reason,notes\n",
            'Li,"+86 139-0000-0001","asked, by phone",x\n',
            "Wang,１３９００００００02,,\n",  # full-width digits, as any lead's phone may have
            "\n",
            "Li again,13900000001,twice,\n",
        ]
    )
    assert found.phones == [
        ListedPhone(2, "13900000001", "asked, by phone"),
        ListedPhone(3, "13900000002", None),
    ]
    assert (found.bad, found.repeated) == ([], 1)


def test_a_header_without_a_reason_column_and_short_rows():
    found = read_phone_list(["phone\n", "13900000001\n", "\n", "  \n", "x,\n"], header=None)
    assert found.phones == [ListedPhone(2, "13900000001")]
    assert found.bad == [BadLine(5, "not_a_phone", "*")]
    found = read_phone_list(["reason,phone\n", "no phone on this row\n"])
    assert found.bad == [BadLine(2, "missing_phone", "empty")]


def test_one_phone_per_line_without_a_header():
    found = read_phone_list(
        ["\ufeff13900000001\r\n", "\n", "139 0000 0002\n", "0086 13900000003\n", "13900000001"]
    )
    assert [(p.line, p.phone) for p in found.phones] == [
        (1, "13900000001"),
        (3, "13900000002"),
        (4, "13900000003"),
    ]
    assert found.repeated == 1 and found.bad == []


def test_every_bad_line_is_kept_with_its_number_why_and_the_value_masked():
    found = read_phone_list(["13900000001", "021-12345678", "13900000001,spam", "abc", "1234"])
    assert [bad.describe() for bad in found.bad] == [
        "line 2: not_mobile (021*****5678)",
        "line 3: not_a_phone (139*********spam)",
        "line 4: not_a_phone (***)",
        "line 5: not_mobile (****)",
    ]
    assert found.phones == [ListedPhone(1, "13900000001")]


def test_a_quoted_value_over_two_lines_is_numbered_by_the_line_it_ends_on():
    found = read_phone_list(["phone,reason", '13900000001,"two', 'lines"', "13900000002,x"])
    assert found.phones == [
        ListedPhone(3, "13900000001", "two\nlines"),
        ListedPhone(4, "13900000002", "x"),
    ]


def test_phones_given_as_arguments_have_no_header():
    found = read_phone_list(["phone", "13900000001"], header=False)
    assert found.bad[0].describe("argument") == "argument 1: not_a_phone (*****)"
    assert found.phones == [ListedPhone(2, "13900000001")]


def test_an_empty_list_has_nothing():
    assert read_phone_list([]).phones == read_phone_list(["\n", " \n"]).phones == []
