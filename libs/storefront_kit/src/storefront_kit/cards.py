"""Recognising payment card numbers (PANs) so that none is accepted, stored or logged.

A *card number* here is 13 to 19 digits that pass the Luhn check, written as one run
or in groups separated by single spaces or dashes (``4111 1111 1111 1111``,
``4111-1111-1111-1111``). Where the groups of a longer run add up to more digits
(a number followed by an expiry date, say), every stretch of whole groups holding
13 to 19 digits is tried. A plain run of more than 19 digits is not a card number.

A run that directly follows ``+`` is an E.164 phone number (``+4915112345678``), not
a card: phone numbers have as many digits as card numbers and one in ten passes the
Luhn check by chance.

Everything here is pure and cheap: one precompiled pattern, no allocation for strings
too short to hold 13 digits. :func:`contains_card_number` walks a parsed JSON body;
:func:`mask_card_numbers` is what log scrubbing uses.
"""

import re
from collections.abc import Iterator, Mapping

__all__ = [
    "CARD_NUMBER_MASK",
    "MAX_DIGITS",
    "MIN_DIGITS",
    "contains_card_number",
    "find_card_numbers",
    "looks_like_card_number",
    "luhn_valid",
    "mask_card_numbers",
]

#: Fewest and most digits of a card number (ISO/IEC 7812).
MIN_DIGITS = 13
MAX_DIGITS = 19
#: What :func:`mask_card_numbers` writes in place of a card number.
CARD_NUMBER_MASK = "[card-number]"

# A maximal run of at least 13 digits, single spaces or dashes between them allowed, not
# preceded by a digit or "+" (greedy, so it ends where the digits do). Shorter runs never
# match: the engine gives up on them early, which keeps the common string cheap.
_RUN = re.compile(rf"(?<![\d+])\d(?:[ -]?\d){{{MIN_DIGITS - 1},}}", re.ASCII)
_GROUP = re.compile(r"\d+", re.ASCII)
# A cheap first look (no lookaround): 13 or more digits, spaces and dashes in a row.
_CANDIDATE = re.compile(rf"[0-9][0-9 -]{{{MIN_DIGITS - 2},}}[0-9]")
_SHORTEST = MIN_DIGITS  # a string shorter than this cannot hold a card number


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn (mod 10) check."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return MIN_DIGITS <= len(digits) <= MAX_DIGITS and luhn_valid(digits)


def _card_spans_in_run(run: re.Match[str]) -> Iterator[tuple[int, int]]:
    text = run.group()
    groups = list(_GROUP.finditer(text))
    if len(groups) == 1:
        if _is_card(text):
            yield run.span()
        return
    # Grouped: every stretch of whole groups with 13..19 digits in total.
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += groups[last].group()
            if len(digits) > MAX_DIGITS:
                break
            if _is_card(digits):
                yield run.start() + groups[first].start(), run.start() + groups[last].end()
                break


def find_card_numbers(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans in ``text`` that look like card numbers (may overlap)."""
    if len(text) < _SHORTEST or not _CANDIDATE.search(text):
        return []
    spans: list[tuple[int, int]] = []
    for run in _RUN.finditer(text):
        spans.extend(_card_spans_in_run(run))
    return spans


def looks_like_card_number(text: str) -> bool:
    """Whether ``text`` holds anything that looks like a card number."""
    if len(text) < _SHORTEST or not _CANDIDATE.search(text):
        return False
    return any(next(_card_spans_in_run(run), None) for run in _RUN.finditer(text))


def contains_card_number(value: object) -> bool:
    """Whether any string in a parsed JSON value (keys included) looks like a card number.

    Walks dicts and lists of any depth without recursion; numbers count too (a card
    number sent as a JSON integer is still a card number).
    """
    pending: list[object] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if looks_like_card_number(item):
                return True
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif (
            isinstance(item, int)
            and not isinstance(item, bool)
            and looks_like_card_number(str(item))
        ):
            return True
    return False


def mask_card_numbers(text: str, mask: str = CARD_NUMBER_MASK) -> str:
    """``text`` with every card number replaced by ``mask``."""
    spans = find_card_numbers(text)
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts: list[str] = []
    cursor = 0
    for start, end in merged:
        parts.append(text[cursor:start])
        parts.append(mask)
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)
