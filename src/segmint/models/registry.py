"""The model registry: every trained version in the store (table ``model_versions``).

A version records the model's definition, its features, the data window it saw, its metrics,
a report for people (clusters, parameters) and the fitted parameters. Parameters are pickled
(scikit-learn estimators have no other faithful form); the store is trusted like the
workspace itself, and nothing outside segmint writes this table.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from segmint.config.mlmodels import ModelDef
from segmint.models.errors import ModelNotTrainedError
from segmint.store import Store, from_store_time, utcnow_naive


@dataclass(frozen=True)
class ModelVersion:
    """One trained version of a model."""

    model: str
    version: int
    kind: str
    trained_at: datetime
    as_of: datetime
    definition: dict[str, Any]
    features: list[str]
    data_window: dict[str, Any]
    metrics: dict[str, Any]
    report: dict[str, Any]
    params: Any = None

    def summary(self) -> dict[str, Any]:
        """Everything but the fitted parameters, JSON-ready."""
        return {
            "model": self.model, "version": self.version, "kind": self.kind,
            "trained_at": self.trained_at.isoformat(), "as_of": self.as_of.isoformat(),
            "features": self.features, "data_window": self.data_window,
            "metrics": self.metrics, "report": self.report, "definition": self.definition,
        }  # fmt: skip


_COLUMNS = ("model, version, kind, trained_at, as_of, definition, features, data_window, "
            "metrics, report, params")  # fmt: skip


def register(store: Store, entry: ModelVersion) -> ModelVersion:
    """Store ``entry`` as the model's next version and return it with that number."""
    with store.transaction():
        rows = store.fetchall(
            "SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE model = ?", [entry.model]
        )
        version = int(rows[0][0]) + 1
        store.execute(
            f"INSERT INTO model_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [entry.model, version, entry.kind, utcnow_naive(entry.trained_at),
             utcnow_naive(entry.as_of), _json(entry.definition), _json(entry.features),
             _json(entry.data_window), _json(entry.metrics), _json(entry.report),
             pickle.dumps(entry.params)],
        )  # fmt: skip
    return ModelVersion(**{**entry.__dict__, "version": version})


def latest(
    store: Store, model: str, *, params: bool = True, kind: str | None = None
) -> ModelVersion:
    """The newest version of ``model``.

    Args:
        store: The store holding the versions.
        model: The model's name.
        params: Load the fitted parameters too.
        kind: The kind ``segmint.yaml`` declares the model now: a version of another kind
            (the model was redeclared since) cannot score it.

    Raises:
        ModelNotTrainedError: When it was never trained, or (``kind``) not as that kind.
    """
    found = versions(store, model, params=params, newest_only=True)
    if not found:
        raise ModelNotTrainedError(
            f"model {model!r} has not been trained yet: run 'segmint models train {model}'"
        )
    entry = found[0]
    if kind is not None and entry.kind != kind:
        raise ModelNotTrainedError(
            f"model {model!r} is declared a {kind} model in segmint.yaml, and its newest "
            f"version v{entry.version} is a {entry.kind} model: it has not been trained as "
            f"{kind} yet: run 'segmint models train {model}'"
        )
    return entry


def versions(
    store: Store, model: str | None = None, *, params: bool = False, newest_only: bool = False
) -> list[ModelVersion]:
    """Versions, newest first (of one model, or of all)."""
    sql = f"SELECT {_COLUMNS} FROM model_versions"
    args: list[Any] = []
    if model is not None:
        sql += " WHERE model = ?"
        args.append(model)
    sql += " ORDER BY model, version DESC"
    out = [_entry(row, params) for row in store.fetchall(sql, args)]
    if newest_only:
        out = [v for i, v in enumerate(out) if i == 0 or out[i - 1].model != v.model]
    return out


def _entry(row: tuple[Any, ...], params: bool) -> ModelVersion:
    def load(value: Any) -> Any:
        return value if isinstance(value, dict | list) else orjson.loads(value)

    blob = bytes(row[10]) if params else None
    return ModelVersion(
        row[0], int(row[1]), row[2], from_store_time(row[3]) or row[3],
        from_store_time(row[4]) or row[4], load(row[5]), load(row[6]), load(row[7]),
        load(row[8]), load(row[9]),
        pickle.loads(blob) if blob is not None else None,  # noqa: S301 (our own table)
    )  # fmt: skip


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def record_scoring(
    store: Store, entry: ModelVersion, as_of: datetime, scored_at: datetime, n: int, written: int
) -> None:
    """Note that ``entry`` scored ``n`` profiles at ``as_of`` (``written`` score events)."""
    store.execute(
        "INSERT INTO model_scorings (model, version, as_of, scored_at, profiles, written) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [entry.model, entry.version, utcnow_naive(as_of), utcnow_naive(scored_at), n, written],
    )


def last_scored(store: Store, model: str) -> datetime | None:
    """The ``as_of`` of the model's latest scoring, if any."""
    rows = store.fetchall("SELECT MAX(as_of) FROM model_scorings WHERE model = ?", [model])
    return from_store_time(rows[0][0]) if rows and rows[0][0] is not None else None


def unscored_warnings(models: Mapping[str, ModelDef], store: Store, rule: str) -> list[str]:
    """One warning per trait ``rule`` reads that a model writes but has not scored yet.

    Such a trait is null for every profile, so the rule matches nobody: a previewed size of
    0 says why, and what to run (``segments preview``, ``POST /v1/segments/preview``).
    """
    from segmint.rules import ast as A
    from segmint.rules.errors import RuleError
    from segmint.rules.parser import parse

    try:
        read = {n.name for n in A.walk(parse(rule)) if isinstance(n, A.TraitRef)}
    except RuleError:
        return []
    out = []
    for model, defn in sorted(models.items()):
        traits = sorted(read & set(defn.output_traits(model).values()))
        if not traits or last_scored(store, model) is not None:
            continue
        run = f"'segmint models score {model}'"
        if not versions(store, model, newest_only=True):
            run = f"'segmint models train {model}', then {run}"
        names = ", ".join(f"'{t}'" for t in traits)
        out.append(f"trait {names} is written by model '{model}', which has scored no "
                   f"profile yet (null for all): run {run}")  # fmt: skip
    return out
