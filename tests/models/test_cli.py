"""``segmint models`` used as a new user would, including wrong input."""

from __future__ import annotations

import json
from datetime import timedelta

from .conftest import add_orders
from .test_training import AS_OF, YAML, _shop


def _ws(tmp_path, cli):
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "segmint.yaml").write_text(YAML)
    from segmint.workspace import Workspace

    with Workspace.open(folder) as ws:
        add_orders(ws.store, _shop(300))
    return folder


def test_train_score_list_show_and_write_segments(tmp_path, cli):
    ws = str(_ws(tmp_path, cli))
    at = AS_OF.isoformat()
    out = cli("-w", ws, "models", "train", "rfm", "--as-of", at, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["version"] == 1
    listed = json.loads(cli("-w", ws, "models", "list", "--format", "json", "--as-of", at).stdout)
    assert {r["name"]: r["version"] for r in listed} == {
        "churn": None,
        "buy": None,
        "clv": None,
        "rfm": 1,
    }
    scored = cli("-w", ws, "models", "score", "rfm", "--as-of", at, "--format", "json")
    assert json.loads(scored.stdout)["written"] == 300
    shown = cli("-w", ws, "models", "show", "rfm", "--write-segments")
    assert "proposed rule:" in shown.stdout and "added segment rfm_cluster_0" in shown.stdout
    assert cli("-w", ws, "segments", "validate").returncode == 0


def test_wrong_input_gets_clear_messages(tmp_path, cli):
    ws = str(_ws(tmp_path, cli))
    typo = cli("-w", ws, "models", "train", "chrun", "--as-of", AS_OF.isoformat())
    assert typo.returncode != 0 and "did you mean 'churn'" in typo.stderr
    untrained = cli("-w", ws, "models", "score", "clv", "--as-of", AS_OF.isoformat())
    assert untrained.returncode != 0 and "segmint models train clv" in untrained.stderr
    bad = cli("-w", ws, "models", "train", "churn", "--as-of", "yesterday-ish")
    assert bad.returncode != 0


def test_score_names_an_unknown_model_with_the_nearest_one(tmp_path, cli):
    ws = str(_ws(tmp_path, cli))
    typo = cli("-w", ws, "models", "score", "chrun", "--as-of", AS_OF.isoformat())
    assert typo.returncode == 1
    assert "unknown model 'chrun'" in typo.stderr and "did you mean 'churn'" in typo.stderr
    assert "has not been trained" not in typo.stderr
    assert typo.stdout == ""  # the progress spinner writes to stderr, results to stdout


def _trained_then_edited(tmp_path, cli, old: str, new: str):
    """The workspace with ``rfm`` trained at AS_OF, then ``old`` replaced by ``new`` in
    its segmint.yaml; the folder and the instant."""
    folder = _ws(tmp_path, cli)
    at = AS_OF.isoformat()
    assert cli("-w", str(folder), "models", "train", "rfm", "--as-of", at).returncode == 0
    yaml = folder / "segmint.yaml"
    yaml.write_text(yaml.read_text().replace(old, new))
    return folder, at


def test_a_model_removed_from_the_workspace_is_not_scored(tmp_path, cli):
    """Its versions stay in the store, but its traits are gone: scoring it is refused."""
    folder, at = _trained_then_edited(tmp_path, cli, "  rfm: {kind: clustering, k: 3}\n", "")
    out = cli("-w", str(folder), "models", "score", "rfm", "--as-of", at, "--no-refresh")
    assert out.returncode == 1 and "unknown model 'rfm'" in out.stderr
    from segmint.workspace import Workspace

    with Workspace.open(folder) as ws:
        scores = ws.store.fetchall("SELECT count(*) FROM events WHERE source = 'segmint.models'")
    assert scores == [(0,)]


def test_write_segments_changes_only_the_lines_it_adds(tmp_path, cli):
    """``--write-segments`` rewrote the whole file with ruamel: the user's alignment went
    (``orders:      {…}`` became ``orders: {…}``); the console's editor keeps every line."""
    folder = _ws(tmp_path, cli)
    yaml = folder / "segmint.yaml"
    mine = yaml.read_text().replace("  orders: {count", "  orders:           {count")
    yaml.write_text("# my shop, laid out by hand\n" + mine)
    before = yaml.read_text()
    at = AS_OF.isoformat()
    assert cli("-w", str(folder), "models", "train", "rfm", "--as-of", at).returncode == 0
    shown = cli("-w", str(folder), "models", "show", "rfm", "--write-segments")
    assert shown.returncode == 0, shown.stderr
    after = yaml.read_text()
    assert after.startswith(before) and "rfm_cluster_0:" in after[len(before) :]
    again = cli("-w", str(folder), "models", "show", "rfm", "--write-segments")
    assert "added segment" not in again.stdout and yaml.read_text() == after


def test_a_removed_model_is_shown_as_removed(tmp_path, cli):
    """``models show`` of a model taken out of segmint.yaml said 'unknown model', though its
    versions (metrics, clusters) are kept in the store."""
    folder, at = _trained_then_edited(tmp_path, cli, "  rfm: {kind: clustering, k: 3}\n", "")
    shown = cli("-w", str(folder), "models", "show", "rfm")
    assert shown.returncode == 0, shown.stderr
    assert "rfm v1 (clustering)" in shown.stdout and "no longer in segmint.yaml" in shown.stdout
    data = json.loads(cli("-w", str(folder), "models", "show", "rfm", "--format", "json").stdout)
    assert data["defined"] is False and data["version"] == 1
    written = cli("-w", str(folder), "models", "show", "rfm", "--write-segments")
    assert written.returncode == 1 and "declare it again under 'models:'" in written.stderr
    assert "rfm_cluster" not in (folder / "segmint.yaml").read_text()
    never = cli("-w", str(folder), "models", "show", "rfn")  # never declared nor stored
    assert never.returncode == 1 and "unknown model 'rfn'" in never.stderr


def _scores(folder):
    from segmint.workspace import Workspace

    with Workspace.open(folder) as ws:
        return ws.store.fetchall("SELECT count(*) FROM events WHERE source = 'segmint.models'")


def test_a_model_declared_as_another_kind_since_training_says_to_train_it(tmp_path, cli):
    """`rfm` turned from clustering into a propensity: scoring it was a traceback
    (AttributeError: 'Clustering' object has no attribute 'predict_proba')."""
    folder = _ws(tmp_path, cli)
    at = AS_OF.isoformat()
    assert cli("-w", str(folder), "models", "train", "rfm", "--as-of", at).returncode == 0
    yaml = folder / "segmint.yaml"
    yaml.write_text(yaml.read_text().replace(
        "  rfm: {kind: clustering, k: 3}", "  rfm: {kind: propensity, target: churn, within: 30d}"
    ))  # fmt: skip
    out = cli("-w", str(folder), "models", "score", "rfm", "--as-of", at, "--format", "json")
    assert out.returncode == 1, out
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "ModelNotTrainedError"
    assert (
        "v1 is a clustering" in error["message"] and "segmint models train rfm" in error["message"]
    )
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert _scores(folder) == [(0,)]


def test_scoring_before_the_data_the_version_learnt_from_is_refused(tmp_path, cli):
    """A score dated a month before the version's data ended was written (events, for good)
    with what the model learnt from the month after, and memberships refreshed back then."""
    folder = _ws(tmp_path, cli)
    at = AS_OF.isoformat()
    assert cli("-w", str(folder), "models", "train", "rfm", "--as-of", at).returncode == 0
    earlier = (AS_OF - timedelta(days=30)).isoformat()
    out = cli("-w", str(folder), "models", "score", "rfm", "--as-of", earlier, "--format", "json")
    assert out.returncode == 1, out
    message = json.loads(out.stdout)["error"]["message"]
    assert "2026-06-01" in message and "2026-05-02" in message and "--as-of" in message
    assert _scores(folder) == [(0,)]
    ok = cli("-w", str(folder), "models", "score", "rfm", "--as-of", at, "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["written"] == 300


def test_write_segments_says_which_proposals_it_did_not_write(tmp_path, cli):
    """A segment of the proposed name already in segmint.yaml (the user's own, or one written
    from an older version's clusters) was skipped without a word: the user believed the
    cluster's rule was written."""
    folder = _ws(tmp_path, cli)
    yaml = folder / "segmint.yaml"
    yaml.write_text(yaml.read_text() + 'segments:\n  rfm_cluster_0: {rule: "orders > 100"}\n')
    at = AS_OF.isoformat()
    assert cli("-w", str(folder), "models", "train", "rfm", "--as-of", at).returncode == 0
    shown = cli("-w", str(folder), "models", "show", "rfm", "--write-segments")
    assert shown.returncode == 0, shown.stderr
    assert "kept segment rfm_cluster_0: segmint.yaml has it with another rule" in shown.stdout
    assert "added segment rfm_cluster_1" in shown.stdout
    assert 'rfm_cluster_0: {rule: "orders > 100"}' in yaml.read_text()
    again = cli("-w", str(folder), "models", "show", "rfm", "--write-segments", "--format", "json")
    data = json.loads(again.stdout)
    assert data["segments_written"] == [] and data["segments_kept"] == ["rfm_cluster_0"]


def test_a_version_trained_on_a_trait_since_removed_says_to_train_again(tmp_path, cli):
    """`avg_order_value` renamed after training: scoring was a traceback (KeyError)."""
    folder, at = _trained_then_edited(tmp_path, cli, "  avg_order_value: {", "  aov: {")
    out = cli("-w", str(folder), "models", "score", "rfm", "--as-of", at, "--format", "json")
    assert out.returncode == 1, out
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "ModelNotTrainedError", error
    assert "avg_order_value" in error["message"] and "segmint models train rfm" in error["message"]
    assert "Traceback" not in out.stderr and _scores(folder) == [(0,)]
