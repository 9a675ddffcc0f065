"""Measurement: attribution of conversions to sends, KPIs, experiments and their statistics.

The statistics live in one module, :mod:`segmint.measure.stats`; everything that reports a
comparison calls it.
"""

from __future__ import annotations
