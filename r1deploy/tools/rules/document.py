"""What JSON allows but a tools file must not hold: repeated keys, numbers that are not finite."""

from __future__ import annotations

from r1deploy import doclimits
from r1deploy.diagnostics import Findings
from r1deploy.tools.registry import RULES

DUPLICATE_KEY = RULES["duplicate-key"]
NUMBER_NOT_FINITE = RULES["number-not-finite"]


def numbers_are_finite(path: tuple, plugin: dict, found: Findings) -> None:
    for where in doclimits.non_finite_numbers(plugin):
        found.add(
            path + where,
            NUMBER_NOT_FINITE,
            "NaN and Infinity are not JSON numbers (1e999 overflows to Infinity); "
            "they pass every bound, and the gateway cannot send them",
            "write a finite number",
        )


def keys_are_unique(path: tuple, plugin: dict, found: Findings) -> None:
    for where in doclimits.duplicate_keys(plugin):
        found.add(
            path + where,
            DUPLICATE_KEY,
            f'key "{where[-1]}" appears more than once in its object; the last one '
            "would win without a word",
            "keep one of them",
            key=True,
        )
