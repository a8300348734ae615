import pytest

from storefront_kit.cards import (
    CARD_NUMBER_MASK,
    contains_card_number,
    find_card_numbers,
    looks_like_card_number,
    luhn_valid,
    mask_card_numbers,
)

# Test numbers the card networks publish (all pass Luhn).
VISA = "4111111111111111"
AMEX = "378282246310005"  # 15 digits
VISA_13 = "4222222222222"
VISA_19 = "4000000000000000006"
MASTERCARD = "5555555555554444"


@pytest.mark.parametrize("number", [VISA, AMEX, VISA_13, VISA_19, MASTERCARD, "79927398713"])
def test_luhn_accepts_valid_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "", "41111a1111", "٤١"])
def test_luhn_refuses_invalid_numbers(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "text",
    [
        VISA,
        AMEX,
        VISA_13,
        VISA_19,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3782 822463 10005",
        "pay with 4111 1111 1111 1111 please",
        "tok_4111111111111111",
        "card:5555555555554444;",
        "4111 1111 1111 1111 12 28",  # followed by the expiry date
        "exp 12 4111111111111111",
    ],
)
def test_card_numbers_are_recognised_in_any_spelling(text: str) -> None:
    assert looks_like_card_number(text)
    assert find_card_numbers(text)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # 16 digits, Luhn fails
        "4111 1111 1111 1112",
        "79927398713",  # passes Luhn but only 11 digits
        "41111111111111111111",  # 20 digits in one run
        "4111  1111  1111  1111",  # double spaces are not a card's grouping
        "+4915112345678",  # E.164 phone (passes Luhn)
        "+49 151 1234 5678",
        "12 Analytical St",
        "2026-12-07 03:07:26",
        "SKU-1",
        "",
        "tok_visa",
        "٤١١١١١١١١١١١١١١١",  # not ASCII digits
    ],
)
def test_other_strings_are_not_card_numbers(text: str) -> None:
    assert not looks_like_card_number(text)
    assert find_card_numbers(text) == []


def test_the_phone_exception_needs_the_plus_sign() -> None:
    assert luhn_valid("4915112345678")
    assert looks_like_card_number("4915112345678")
    assert not looks_like_card_number("+4915112345678")


def test_contains_card_number_walks_every_string_and_number_of_a_json_value() -> None:
    clean = {
        "items": [{"sku": "A-1", "qty": 2}],
        "address": {"line1": "12 Analytical St", "phone": "+4915112345678"},
        "n": 4111111111111112,
        "flag": True,
    }
    assert not contains_card_number(clean)
    assert contains_card_number({**clean, "address": {"line2": "4111-1111-1111-1111"}})
    assert contains_card_number({**clean, "items": [[["x", {"deep": VISA}]]]})
    assert contains_card_number({**clean, "n": 4111111111111111})
    assert contains_card_number({VISA: "as a key"})
    assert contains_card_number(VISA)
    assert not contains_card_number(None)


def test_mask_card_numbers_leaves_the_rest_of_the_text() -> None:
    assert mask_card_numbers(f"a {VISA} b 4111 1111 1111 1111 c") == (
        f"a {CARD_NUMBER_MASK} b {CARD_NUMBER_MASK} c"
    )
    assert mask_card_numbers("no card here, order 12") == "no card here, order 12"
    masked = mask_card_numbers("4111 1111 1111 1111 12 28", mask="#")
    assert "4111" not in masked
