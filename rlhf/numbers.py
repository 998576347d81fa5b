"""Whole numbers from outside (query parameters, form fields, path ids): one rule, used everywhere (Django-free).

`str.isdigit()` is true for "²" and "①", which `int()` refuses (a 500 where it was trusted), and `int()` itself
takes "٣" (Arabic-Indic three), " 2", "+2", "02" and "1_000". A whole number here is written one way only: an
optional minus and ASCII digits without a leading zero, within the bounds of the column it goes to.
"""

from __future__ import annotations

import re

# The ranges of the database columns numbers go to: a value outside its column is a 500 from the database.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # IntegerField
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # BigIntegerField, BigAutoField (every primary key)

WHOLE_NUMBER = re.compile(r"-?[1-9][0-9]*|0", re.ASCII)
# More characters than the widest 64-bit number: refused before the regex and int() see a long string.
MAX_DIGITS = len(str(INT64_MIN))


def parse_whole_number(value: object, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int | None:
    """`value` as an int when it is a string of plain ASCII digits (optionally negative) within
    [minimum, maximum]; None for anything else (None, "", "²", "٣", "+2", "02", " 2", "2.0", out of range)."""
    if not isinstance(value, str) or len(value) > MAX_DIGITS or not WHOLE_NUMBER.fullmatch(value):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None


def parse_id(value: object) -> int | None:
    """A primary key: a whole number from 1 to the largest a 64-bit key holds; None for anything else."""
    return parse_whole_number(value, 1, INT64_MAX)
