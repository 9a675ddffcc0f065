"""``models:`` in segmint.yaml: wrong input gets a located error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from segmint.config.errors import ConfigError
from segmint.models import service
from segmint.models.errors import ModelError
from segmint.traits.errors import TraitDefinitionError
from segmint.workspace import Workspace

BASE = """name: shop
traits:
  orders: {count: events, event: Order Completed}
  favorite: {most_frequent: properties.category, event: Product Viewed}
models:
"""


def _open(tmp_path, models: str) -> Workspace:
    folder = tmp_path / "ws"
    folder.mkdir(exist_ok=True)
    (folder / "segmint.yaml").write_text(BASE + models)
    return Workspace.open(folder)


@pytest.mark.parametrize(
    ("models", "line", "message"),
    [
        ("  clv: {kind: clvv}\n", 6, "kind"),
        ("  clv: {kind: clv, traits: {clvv: x}}\n", 6, "has no output 'clvv'"),
        ("  churn: {kind: propensity, within: 3 fortnights}\n", 6, "within"),
        ("  rfm: {kind: clustering, k: 1}\n", 6, "k"),
        ("  clv: {kind: clv, k: 3}\n", 6, "'k' applies only to clustering"),
        ("  churn: {kind: propensity, colour: red}\n", 6, "colour"),
    ],
)
def test_a_bad_model_definition_is_located(tmp_path, models, line, message):
    with pytest.raises(ConfigError) as info:
        _open(tmp_path, models)
    text = str(info.value)
    assert f"segmint.yaml:{line}:" in text and message in text


def test_a_model_trait_may_not_shadow_a_trait(tmp_path):
    with pytest.raises((ConfigError, TraitDefinitionError), match="already defined"):
        ws = _open(tmp_path, "  churn: {kind: propensity, traits: {score: orders}}\n")
        service._catalog(ws)


def test_a_mistyped_or_unusable_feature_is_refused_with_a_suggestion(tmp_path):
    ws = _open(tmp_path, "  churn: {kind: propensity, features: [ordres]}\n")
    with pytest.raises(ModelError, match="'ordres' is unknown; did you mean 'orders'"):
        service.feature_traits(service._catalog(ws), ws.definition.models["churn"])
    ws.close()
    ws = _open(tmp_path, "  churn: {kind: propensity, features: [favorite]}\n")
    with pytest.raises(ModelError, match="not a number, boolean or timestamp"):
        service.feature_traits(service._catalog(ws), ws.definition.models["churn"])
    ws.close()


def test_rfm_without_the_traits_it_needs_says_which_to_add(tmp_path):
    ws = _open(tmp_path, "  rfm: {kind: clustering}\n")
    with pytest.raises(ModelError, match="recency and monetary"):
        service.feature_traits(service._catalog(ws), ws.definition.models["rfm"])
    ws.close()


def test_without_the_ml_extra_training_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    ws = _open(tmp_path, "  churn: {kind: propensity}\n")
    from segmint.models.errors import MLUnavailableError

    with pytest.raises(MLUnavailableError, match=r"pip install 'segmint\[ml\]'"):
        service.train(ws, "churn", datetime(2026, 1, 1, tzinfo=UTC))
    ws.close()
