"""``/v1/reports/kpis`` accepts what ``segmint report kpis`` accepts, and refuses the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.api.conftest import NOW, Live

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


def test_an_instant_may_be_relative_as_on_the_command_line(live: Live) -> None:
    """``as_of=now`` or ``from=-7d`` (what ``--as-of`` takes) was a 422 'not ISO 8601'."""
    h = {"Authorization": f"Bearer {live.read_key}"}
    with live.client(headers=h) as client:
        week = client.get("/v1/reports/kpis", params={"from": "-7d", "to": "now"})
        assert week.status_code == 200, week.text
        assert week.json()["from"] == (NOW - timedelta(days=7)).isoformat()
        assert week.json()["to"] == NOW.isoformat()
        far = client.get("/v1/reports/kpis", params={"from": "0001-01-01"})
        assert far.status_code == 422 and far.json()["error"]["field"] == "from"
        assert "out of range" in far.json()["error"]["message"]


def test_global_holdout_not_configured_is_not_found(live: Live) -> None:
    """It answered 500 'internal_error', and was offered as a name to every unknown one."""
    h = {"Authorization": f"Bearer {live.read_key}"}
    with live.client(headers=h) as client:
        held = client.get("/v1/reports/experiments/global_holdout")
        assert held.status_code == 404, held.text
        assert "global_holdout_percent" in held.json()["error"]["message"]
        other = client.get("/v1/reports/experiments/nope")
        assert other.status_code == 404 and "global_holdout" not in other.text
