"""Phone numbers are masked wherever text leaves the process: messages, dumps of rows and
dicts, exceptions; identifiers that merely hold digits (UUIDs, hex ids) are left whole."""

from __future__ import annotations

import json

import pytest

from agent_api.exceptions import AgentApiValidationError
from agent_api.masking import mask_phone, mask_phones_in
from tests.plugins.agent_api.conftest import leaks_in


def test_phone_masking():
    assert mask_phone("13012121211") == "130****1211"
    assert mask_phone("123") == "***"
    assert mask_phones_in("rows 13012121211 and +8613012121211 failed") == (
        "rows 130****1211 and +861******1211 failed"
    )


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        (13012121211, "130****1211"),  # an integer column
        ("12345678", "123*5678"),
        ("1234567", "*******"),  # too short to keep any digit
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone_keeps_three_leading_and_four_trailing_digits_of_any_value(phone, masked):
    assert mask_phone(phone) == masked


def test_masking_leaves_uuids_and_hex_ids_whole():
    unique_id = "5b1f0c2e-9a77-4d1e-8c1a-70479605ced1"
    numeric_tail = "00000000-0000-4000-8000-123456789012"
    text = f"batch {unique_id} of task {numeric_tail}, trace 3f9a12345678901b, 13012121211 lost"
    assert mask_phones_in(text) == (
        f"batch {unique_id} of task {numeric_tail}, trace 3f9a12345678901b, 130****1211 lost"
    )


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567 shipped",  # seven digits: no phone
        "card 1234567890123456",  # sixteen digits: no phone either
        "lead abc13012121211 and 13012121211x",  # part of an identifier
    ],
)
def test_digit_runs_that_are_no_phone_stay(text):
    assert mask_phones_in(text) == text


def test_masking_catches_phones_in_chinese_text_and_in_structured_dumps():
    assert mask_phones_in("手机号13012121211无效") == "手机号130****1211无效"
    assert mask_phones_in("[parameters: ('13012121211', 'a')]") == (
        "[parameters: ('130****1211', 'a')]"
    )
    assert mask_phones_in('{"phone":"+8613012121211"}') == '{"phone":"+861******1211"}'


def test_masking_catches_every_phone_of_a_dict_and_of_an_exception():
    rows = {"rows": [{"phone": "13012121211", "extra": "5001"}, {"phone": "8613912345678"}]}
    for dumped in (str(rows), json.dumps(rows)):
        masked = mask_phones_in(dumped)
        assert "13012121211" not in masked and "8613912345678" not in masked
        assert "130****1211" in masked and "861******5678" in masked
        assert "5001" in masked  # a lead id is no phone
    error = AgentApiValidationError("data.0.phone 13012121211 is invalid", path="/p")
    assert mask_phones_in(str(error)) == (
        "agent-api error on /p: data.0.phone 130****1211 is invalid"
    )


def test_log_check_finds_a_leaked_token_and_phone():
    """The check every test of this package ends with (conftest.no_secrets_in_logs)."""
    text = "token abc-123 sent 13900000001, masked 139****0002"
    assert leaks_in(text, "abc-123", {"13900000001", "13900000002"}) == [
        "the API token",
        "phone 139...01",
    ]
    assert leaks_in("clean", "abc-123", {"13900000001"}) == []
