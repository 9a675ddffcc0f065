"""``/v1/reports/kpis`` accepts what ``segmint report kpis`` accepts, and refuses the rest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from segmint.api.errors import ApiError
from segmint.api.reports import kpis
from segmint.measure.kpis import GROUPINGS
from segmint.workspace import Workspace

END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize("by", GROUPINGS)
def test_every_grouping_of_the_report_is_served(workspace: Workspace, by: str) -> None:
    assert kpis(workspace, by, None, END)["by"] == by


def test_churn_without_segments_is_refused_naming_the_field(workspace: Workspace) -> None:
    with pytest.raises(ApiError, match="by=segment") as caught:
        kpis(workspace, "campaign", None, END, churn_to="churned")
    assert caught.value.status == 422 and caught.value.field == "churn_to"
