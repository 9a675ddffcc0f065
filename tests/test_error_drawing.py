"""The hierarchy drawn in ``segmint/errors.py`` names every error class segmint defines."""

from __future__ import annotations

import importlib
import pkgutil

import segmint
from segmint import errors


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_error_class_is_in_the_drawing() -> None:
    for info in pkgutil.walk_packages(segmint.__path__, "segmint."):
        importlib.import_module(info.name)
    drawing = errors.__doc__ or ""
    ours = {c for c in _all_subclasses(errors.SegmintError) if c.__module__.startswith("segmint.")}
    missing = sorted(c.__name__ for c in ours if c.__name__ not in drawing)
    assert len(ours) > 40
    assert missing == [], f"add these to the drawing in segmint/errors.py: {missing}"
