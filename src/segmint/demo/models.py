"""The demo's models step: train CLV, churn risk and RFM clusters on the synthetic shop.

It runs what ``segmint models train`` / ``score`` run, refreshes memberships (a rule on
``churn_risk`` moves members like any other), then prints the clusters with their proposed
rules and the customers most at risk. A model the shop is too small for says so; the
demo goes on.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from segmint.demo.stage import DemoContext, need


def train_models(ctx: DemoContext) -> str:
    """Train and score every model of the demo workspace; print clusters and top risks."""
    (train, score) = need("segmint.models.service", "train", "score")
    (not_enough,) = need("segmint.models.errors", "NotEnoughDataError")
    (membership_class,) = need("segmint.membership.service", "Membership")
    as_of = ctx.options.as_of
    done: dict[str, Any] = {}
    notes: list[str] = []
    for name in ctx.ws.definition.models:
        try:
            with ctx.console.status(f"Training and scoring {name}…"):
                done[name] = train(ctx.ws, name, as_of)
                score(ctx.ws, name, as_of)
        except not_enough as exc:
            notes.append(f"{name}: {exc}")
            ctx.console.print(f"[yellow]{name}: {exc}[/yellow]")
    report = membership_class(ctx.ws).refresh(as_of)
    for entry in done.values():
        if entry.kind == "clustering":
            ctx.console.print(_clusters_table(entry))
    risks = _top_risks(ctx, [n for n, e in done.items() if e.kind == "propensity"])
    ctx.facts["models"] = {n: {"version": e.version, "metrics": _brief(e.metrics)}
                           for n, e in done.items()}  # fmt: skip
    ctx.facts["models_top_risk"] = risks
    trained = ", ".join(f"{n} v{e.version}" for n, e in done.items()) or "none"
    tail = f"; {len(notes)} refused for too little data" if notes else ""
    return f"trained {trained}; memberships {report.entered} entered, {report.exited} exited{tail}"


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "calibration"}


def _clusters_table(entry: Any) -> Table:
    table = Table(title=f"Clusters of {entry.model} (k={entry.metrics['k']})")
    for column in ("cluster", "size", "share", "in words", "proposed rule"):
        table.add_column(column)
    for c in entry.report["clusters"]:
        table.add_row(str(c["cluster"]), f"{c['size']:,}", f"{c['share']:.0%}", c["summary"],
                      c["proposed_rule"])  # fmt: skip
    return table


def _top_risks(ctx: DemoContext, models: list[str], top: int = 5) -> list[dict[str, Any]]:
    (catalog_of,) = need("segmint.traits.validate", "workspace_catalog")
    (read_values,) = need("segmint.traits.batch", "read_values")
    out: list[dict[str, Any]] = []
    if not models:
        return out
    values = read_values(ctx.ws.store, catalog_of(ctx.ws))
    name = models[0]
    ranked = sorted(((v.get(name), pid) for pid, v in values.items() if v.get(name) is not None),
                    reverse=True)[:top]  # fmt: skip
    users = dict(ctx.ws.store.fetchall("SELECT profile_id, value FROM identities "
                                       "WHERE kind = 'user_id'"))  # fmt: skip
    table = Table(title=f"Top {top} by {name}")
    for column in ("customer", "archetype", name, "lifetime_value", "last_purchase_at"):
        table.add_column(column)
    for risk, pid in ranked:
        row = values[pid]
        user = users.get(pid, pid)
        out.append({"customer": user, name: risk})
        last = row.get("last_purchase_at")
        table.add_row(user, ctx.archetypes.get(user, ""), f"{risk:.2f}",
                      f"{row.get('lifetime_value') or 0:,.2f}",
                      f"{last:%Y-%m-%d}" if last is not None else "")  # fmt: skip
    ctx.console.print(table)
    return out
