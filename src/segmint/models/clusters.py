"""Clustering: discovered segments, described in words and proposed as segment rules.

Features are traits (a timestamp trait enters as ``days_since(trait)``), standardised to
mean 0 and variance 1 over the population; a NULL is the population mean. K-Means runs for
each k from 2 to 8 and keeps the k with the best silhouette (on a fixed sample of at most
4,000 profiles), unless ``k`` is given. Each cluster is described by its size and its
centroid against the population, and turned into a proposed rule by a shallow decision tree
(depth 2) that separates it from the rest on the raw trait values: the rule is the
disjunction of the tree's paths to leaves where the cluster is the majority, printed as
segmint rule text. Its precision and recall against the cluster are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segmint.models.errors import NotEnoughDataError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Floats = npt.NDArray[np.float64]

MIN_PROFILES = 20
"""The fewest profiles a clustering accepts."""
K_RANGE = range(2, 9)
SILHOUETTE_SAMPLE = 4_000


@dataclass(frozen=True)
class Clustering:
    """A fitted clustering: the scaler, K-Means and what each cluster is."""

    names: tuple[str, ...]
    mean: Floats
    scale: Floats
    kmeans: Any
    silhouettes: dict[int, float]

    @property
    def k(self) -> int:
        """The number of clusters."""
        return int(self.kmeans.n_clusters)

    def standardise(self, values: Floats) -> Floats:
        """Values on the population's scale; NULL (NaN) becomes the mean (0)."""
        import numpy as np

        z = (values - self.mean) / self.scale
        return np.asarray(np.nan_to_num(z, nan=0.0))

    def assign(self, values: Floats) -> Any:
        """The cluster (0-based) of each row."""
        return self.kmeans.predict(self.standardise(values))


def fit(names: tuple[str, ...], values: Floats, k: int | None = None, seed: int = 0) -> Clustering:
    """Cluster ``values`` (profiles × features), choosing k by silhouette unless given."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    if len(values) < MIN_PROFILES:
        raise NotEnoughDataError(
            f"clustering needs at least {MIN_PROFILES} profiles with the features; "
            f"found {len(values)}"
        )
    mean = np.nanmean(values, axis=0)
    scale = np.nanstd(values, axis=0)
    scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    z = np.nan_to_num((values - mean) / scale, nan=0.0)
    sample = min(len(z), SILHOUETTE_SAMPLE)
    fits: dict[int, Any] = {}
    scores: dict[int, float] = {}
    for n in [k] if k is not None else [n for n in K_RANGE if n < len(z)]:
        fits[n] = KMeans(n_clusters=n, n_init=4, random_state=seed).fit(z)
        labels = fits[n].labels_
        if len(set(labels)) > 1:
            scores[n] = round(float(silhouette_score(z, labels, sample_size=sample,
                                                     random_state=seed)), 4)  # fmt: skip
    best = k if k is not None else max(scores, key=lambda n: (scores[n], -n))
    return Clustering(names, mean, scale, fits[best], scores)


def describe(model: Clustering, values: Floats) -> list[dict[str, Any]]:
    """Each cluster's size, share, centroid against the population, and words for it."""
    import numpy as np

    labels = model.assign(values)
    out = []
    for c in range(model.k):
        rows = values[labels == c]
        traits: list[dict[str, Any]] = []
        for j, name in enumerate(model.names):
            mean = float(np.nanmean(rows[:, j])) if np.isfinite(rows[:, j]).any() else None
            z = 0.0 if mean is None else (mean - model.mean[j]) / model.scale[j]
            traits.append({"feature": name, "mean": _round(mean),
                           "population": _round(float(model.mean[j])), "z": round(float(z), 2),
                           "words": _words(name, z)})  # fmt: skip
        traits.sort(key=lambda t: -abs(t["z"]))
        words = ", ".join(t["words"] for t in traits if abs(t["z"]) >= 0.5) or "close to average"
        out.append({"cluster": c, "size": int(len(rows)),
                    "share": round(len(rows) / max(len(values), 1), 4),
                    "summary": words, "features": traits})  # fmt: skip
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _words(name: str, z: float) -> str:
    if abs(z) < 0.5:
        return f"{name} about average"
    size = "much " if abs(z) >= 1.5 else ""
    if name.startswith("days_since(") and name.endswith(")"):  # recency reads the other way
        trait = name[len("days_since(") : -1]
        return f"{size}{'older' if z > 0 else 'more recent'} {trait}"
    return f"{size}{'higher' if z > 0 else 'lower'} {name}"


def propose_rules(model: Clustering, values: Floats, depth: int = 2) -> list[dict[str, Any]]:
    """A rule per cluster from a shallow tree, with its precision and recall."""
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    labels = model.assign(values)
    filled = np.where(np.isnan(values), model.mean, values)
    out = []
    for c in range(model.k):
        target = (labels == c).astype(int)
        tree = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(filled, target)
        paths = _paths(tree.tree_, model.names, 0, [])
        rule = " or ".join(_conjunction(p) for p in paths) or "false"
        chosen = _leaves_mask(tree, filled, paths)
        hits = int((chosen & (target == 1)).sum())
        out.append({"cluster": c, "rule": rule,
                    "precision": round(hits / max(int(chosen.sum()), 1), 3),
                    "recall": round(hits / max(int(target.sum()), 1), 3)})  # fmt: skip
    return out


def _paths(tree: Any, names: tuple[str, ...], node: int, path: list[str]) -> list[list[str]]:
    left, right = tree.children_left[node], tree.children_right[node]
    if left == right:  # a leaf: keep it when the cluster is the majority there
        counts = tree.value[node][0]
        return [path] if len(counts) > 1 and counts[1] > counts[0] else []
    name, cut = names[tree.feature[node]], round(float(tree.threshold[node]), 2)
    return (_paths(tree, names, left, [*path, f"{name} <= {cut:g}"])
            + _paths(tree, names, right, [*path, f"{name} > {cut:g}"]))  # fmt: skip


def _conjunction(path: list[str]) -> str:
    if not path:
        return "true"
    return " and ".join(path) if len(path) == 1 else "(" + " and ".join(path) + ")"


def _leaves_mask(tree: Any, values: Floats, paths: list[list[str]]) -> Any:
    import numpy as np

    leaves = tree.apply(values)
    counts = tree.tree_.value[:, 0, :]
    majority = counts[:, -1] > counts[:, 0] if counts.shape[1] > 1 else np.zeros(len(counts), bool)
    return majority[leaves] if paths else np.zeros(len(values), bool)
