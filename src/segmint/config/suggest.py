"""Nearest-name suggestions for unknown keys and names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or None if nothing is close."""
    pool = list(candidates)
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if found:
        return found[0]
    lowered = {c.lower(): c for c in pool}
    return lowered.get(name.lower())


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return "did you mean 'x'?" for the nearest candidate, or None."""
    found = nearest(name, candidates)
    return f"did you mean '{found}'?" if found else None
