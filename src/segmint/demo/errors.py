"""Errors of the demo.

::

    SegmintError
    └── DemoError          the demo cannot run as asked (bad options, a folder it must not reset)
"""

from __future__ import annotations

from segmint.errors import SegmintError


class DemoError(SegmintError):
    """The demo cannot run as asked."""
