"""Pin the public API: what ``import segmint`` offers is a decision, not an accident."""

from __future__ import annotations

import segmint


def test_all_is_sorted_and_complete() -> None:
    names = list(segmint.__all__)
    assert names == sorted(names)
    for name in names:
        assert hasattr(segmint, name), name
    public = {n for n in dir(segmint) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(names)
