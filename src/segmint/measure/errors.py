"""Errors of measurement.

::

    SegmintError
    └── MeasureError                       attribution, KPIs, experiments
        ├── UnknownExperimentError + LookupError   a name that is no experiment
        └── ExperimentDefinitionError + ValueError an experiment that cannot run as written
"""

from __future__ import annotations

from segmint.errors import SegmintError


class MeasureError(SegmintError):
    """Measurement cannot do what was asked."""


class UnknownExperimentError(MeasureError, LookupError):
    """No experiment of that name (the message suggests the nearest)."""


class ExperimentDefinitionError(MeasureError, ValueError):
    """An experiment that cannot run as written (unknown campaign, bad weights)."""
