"""Suggestions for a mistyped name: every "unknown ..." message offers the closest valid one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the valid name closest to ``name``, or ``""``.

    ``difflib.get_close_matches`` with its default cutoff (0.6 similarity), so a typo of
    one or two letters is matched and an unrelated name gets no suggestion.
    """
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
