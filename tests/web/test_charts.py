"""The console's SVG charts: every label escaped, values placed inside the drawing."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from segmint.web.charts import bars, heatmap, sparkline

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    """The chart as XML (it must be well formed: nothing a label holds escapes it)."""
    return ET.fromstring(markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def test_labels_cannot_break_out_of_the_drawing() -> None:
    for chart in (
        heatmap([HOSTILE, "vip"], {(HOSTILE, "vip"): (3, 0.25)}),
        bars([HOSTILE], {HOSTILE: [1.0, None]}),
    ):
        assert "<script>" not in chart and "<img" not in chart
        root = parsed(str(chart))
        texts = [t.text for t in root.iter(f"{SVG}text")] + [
            t.text for t in root.iter(f"{SVG}title")
        ]
        assert any(t and HOSTILE in t for t in texts)  # shown, as text


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=200))
def test_a_sparkline_stays_inside_its_box_and_names_its_range(values: list[int]) -> None:
    svg = parsed(str(sparkline(values, width=120, height=24)))
    points = svg.find(f"{SVG}polyline").get("points")  # type: ignore[union-attr]
    for pair in points.split():  # type: ignore[union-attr]
        x, y = map(float, pair.split(","))
        assert 0 <= x <= 120 and 0 <= y <= 24
    label = svg.get("aria-label")
    assert label == f"from {values[0]:g} to {values[-1]:g}, highest {max(values):g}"


def test_an_empty_history_draws_nothing() -> None:
    assert not re.search("polyline", str(sparkline([])))
