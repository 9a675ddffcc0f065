"""Errors of the models stage.

::

    SegmintError
    └── ModelError
        ├── UnknownModelError  + KeyError     a model name not in segmint.yaml
        ├── ModelNotTrainedError              scoring or showing a model never trained
        ├── NotEnoughDataError + ValueError   too few profiles or events, or one class only
        ├── ScoreInstantError  + ValueError   scoring before the data a version learnt from
        └── MLUnavailableError                scipy/scikit-learn missing (the `ml` extra)
"""

from __future__ import annotations

from segmint.errors import SegmintError


class ModelError(SegmintError):
    """Base class of the models stage's errors."""


class UnknownModelError(ModelError, KeyError):
    """A model name that ``segmint.yaml`` does not declare."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelNotTrainedError(ModelError):
    """A model that has no trained version in the store yet."""


class NotEnoughDataError(ModelError, ValueError):
    """The data cannot support a fit: too few profiles or events, or a single class."""


class ScoreInstantError(ModelError, ValueError):
    """Scores asked at an instant before the end of the data the model's version learnt from."""


class MLUnavailableError(ModelError):
    """The optional machine-learning libraries are not installed."""
