"""Experiments on campaigns, and their reports.

An experiment splits a campaign's eligible recipients (those the consent gate lets
through) into arms at send time (:mod:`segmint.measure.assign`); a ``holdout`` arm is sent
nothing. The report reads, per arm, every assigned profile (intention to treat: a holdout
counts like any other arm):

- ``open`` / ``click``: the profile opened (machine opens excluded) / clicked the campaign;
- ``conversion``: the profile made a conversion event within ``measure.window`` after its
  assignment; ``revenue``: the revenue of those conversions (per recipient).

Before any result, the arms' sizes are checked against their weights (sample-ratio
mismatch); a mismatch withholds the verdict. Each arm is compared with the first (the
control) by :mod:`segmint.measure.stats`: z-test (or the sequential test) for rates,
Welch for revenue, the Bayesian chance to beat the control, and Holm's correction over the
arms.

The workspace's global holdout is reported under the name ``global_holdout``: every profile
seen by the end of the period, in the arm the gate's rule puts it in now, converting (or
not) in the period.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from segmint.common import did_you_mean
from segmint.config.measure import ExperimentDef, VariantDef, experiments_of
from segmint.config.model import WorkspaceDef
from segmint.measure import sql, stats
from segmint.measure.assign import GLOBAL_HOLDOUT, in_global_holdout
from segmint.measure.attribution import CLICKED, OPENED
from segmint.measure.errors import UnknownExperimentError
from segmint.store import Store, read_meta, utcnow_naive, write_meta

METRICS = ("open", "click", "conversion", "revenue")


def campaign_experiment(defn: WorkspaceDef, campaign: str) -> tuple[str, ExperimentDef] | None:
    """Return the (name, definition) of the experiment that splits ``campaign``, if any."""
    for name, (exp, _path) in experiments_of(defn).items():
        if exp.campaign == campaign:
            return name, exp
    return None


def variants_of(defn: WorkspaceDef, campaign: str) -> tuple[VariantDef, ...]:
    """Return the arms of the experiment on ``campaign`` (none without one)."""
    found = campaign_experiment(defn, campaign)
    return () if found is None else found[1].variants


@dataclass
class Arm:
    """One arm's counts: units, and per metric the sum (and, for revenue, the squares)."""

    name: str
    weight: float
    holdout: bool
    n: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    revenue: float = 0.0
    revenue_squares: float = 0.0

    def sample(self, metric: str) -> stats.Sample:
        """Return the arm's :class:`~segmint.measure.stats.Sample` of ``metric``."""
        if metric == "revenue":
            return stats.Sample(self.n, self.revenue, self.revenue_squares)
        total = {"open": self.opened, "click": self.clicked, "conversion": self.converted}
        return stats.Sample(self.n, total[metric])


@dataclass
class ExperimentReport:
    """An experiment's arms, its SRM check and each arm's comparison with the control."""

    name: str
    campaign: str | None
    metric: str
    method: str
    alpha: float
    as_of: datetime
    arms: list[Arm]
    srm: stats.SrmCheck
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    conclusion: str = ""
    winner: dict[str, Any] | None = None
    """The recorded auto-winner decision (arm, when, on what evidence), if any."""

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (NaN/inf become None)."""
        control = self.arms[0].name if self.arms else None
        arms = []
        for arm in self.arms:
            row: dict[str, Any] = {
                "arm": arm.name, "weight": arm.weight, "holdout": arm.holdout, "n": arm.n,
                "opened": arm.opened, "clicked": arm.clicked, "converted": arm.converted,
                "revenue": arm.revenue, "rate": _finite(arm.sample(self.metric).mean),
                **{f"{m}_rate": _finite(arm.sample(m).mean) for m in METRICS},
                "control": arm.name == control,
            }  # fmt: skip
            if arm.name in self.comparisons:
                row.update(self.comparisons[arm.name])
            arms.append(row)
        return {
            "experiment": self.name,
            "campaign": self.campaign,
            "metric": self.metric,
            "method": self.method,
            "alpha": self.alpha,
            "as_of": self.as_of.isoformat(),
            "srm": {
                "p_value": self.srm.p_value,
                "ok": self.srm.ok,
                "threshold": self.srm.threshold,
            },  # fmt: skip
            "arms": arms,
            "conclusion": self.conclusion,
            "winner": self.winner,
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def experiment_list(defn: WorkspaceDef) -> list[dict[str, Any]]:
    """Every experiment by name: campaign, metric and arms, then the global holdout.

    An arm is ``{"name", "weight", "holdout"}``; the global holdout (when
    ``measure.global_holdout_percent`` is set) has no campaign, and its two arms weigh
    their percent of all profiles. What ``segmint experiments list --format json`` prints
    and ``GET /v1/reports/experiments`` answers.
    """
    found: list[dict[str, Any]] = [
        {"experiment": name, "campaign": exp.campaign, "metric": exp.metric,
         "arms": [{"name": v.name, "weight": v.weight, "holdout": v.holdout}
                  for v in exp.variants]}
        for name, (exp, _path) in sorted(experiments_of(defn).items())
    ]  # fmt: skip
    percent = defn.measure.global_holdout_percent
    if percent:
        arms = [{"name": "holdout", "weight": percent, "holdout": True},
                {"name": "marketed", "weight": 100.0 - percent, "holdout": False}]  # fmt: skip
        found.append({"experiment": GLOBAL_HOLDOUT, "campaign": None,
                      "metric": "conversion", "arms": arms})  # fmt: skip
    return found


def find_experiment(defn: WorkspaceDef, name: str) -> ExperimentDef:
    """Return the named experiment's definition.

    Raises:
        UnknownExperimentError: No such experiment, with the nearest name.
    """
    known = experiments_of(defn)
    if name not in known:
        held = [GLOBAL_HOLDOUT] if defn.measure.global_holdout_percent else []
        names = sorted([*known, *held])
        why = _why_not(defn, name)
        hint = None if why else did_you_mean(name, names)
        raise UnknownExperimentError(
            f"unknown experiment {name!r}"
            + (f": {why}" if why else "")
            + f" (experiments: {', '.join(names) or 'none defined'})"
            + (f"; {hint}" if hint else "")
        )
    return known[name][0]


def _refuse_removed(store: Store, name: str) -> None:
    """Raise if ``name`` has stored assignments: an experiment removed from the workspace.

    Its arms' weights, control and metric live only in its definition, so it cannot be judged
    without it; saying so beats calling a name with a history unknown.
    """
    rows = store.fetchall(
        "SELECT arm, count(*) FROM experiment_assignments WHERE experiment = ? "
        "GROUP BY arm ORDER BY arm",
        [name],
    )
    if rows:
        arms = ", ".join(f"{arm} {n}" for arm, n in rows)
        raise UnknownExperimentError(
            f"experiment {name!r} is no longer in segmint.yaml; the store still holds who was "
            f"assigned to its arms ({sum(n for _, n in rows)} assigned: {arms}): put its "
            "definition back to report it (its control, weights and metric are read from there)"
        )


def _why_not(defn: WorkspaceDef, name: str) -> str | None:
    """Why ``name``, a campaign, journey or journey step, is no experiment (None: unknown)."""
    split = campaign_experiment(defn, name)
    if split is not None:
        return f"campaign {name!r} is split by experiment {split[0]!r}; report that one"
    if name in defn.campaigns:
        return (
            f"campaign {name!r} has no experiment; give it 'variants:' (its arms) or name it "
            "as the campaign of one under 'experiments:'"
        )
    if name.startswith("journey:"):  # the label KPIs give a journey step: JOURNEY.STEP here
        dotted = ".".join(name.split(":")[1:3])
        why = _why_not(defn, dotted) if dotted else None
        return f"a journey step's experiment is named JOURNEY.STEP ({dotted!r})" + (
            f": {why}" if why else ""
        )
    journey, _, step = name.partition(".")
    found = defn.journeys.get(journey)
    if found is None:
        return None
    steps = dict(zip(found.step_names(), found.steps, strict=True))
    sends = [n for n, s in steps.items() if s.send is not None]
    if not step:
        return (
            f"a journey step's experiment is named JOURNEY.STEP; the send steps of {journey!r} "
            f"are {', '.join(sends)}"
        )
    if step not in steps:
        hint = did_you_mean(step, list(steps))
        return f"journey {journey!r} has no step {step!r}" + (f" ({hint})" if hint else "")
    if steps[step].send is None:
        return f"step {step!r} of journey {journey!r} sends nothing: only a send step has arms"
    return f"journey step {name!r} has no experiment; give the step 'variants:' (its arms)"


def arm_counts_query(dialect: str, window: str, revenue: str) -> str:
    """Return the SQL of per-arm counts of one experiment up to ``?``.

    A person counts once, in the arm of their first assignment: a profile merged away
    counts for its survivor (whose events intake moved). Only the few profiles a merge
    touched are ranked; the rest are read as they are.

    Parameters: experiment, as_of (assignments; twice), campaign and a LIKE pattern of it (a
    journey step's ``campaign:%``), as_of (engagement), the conversion event, as_of
    (conversions).
    """
    campaign = sql.campaign(dialect)
    human_open, human_click = (
        sql.human(dialect, "machine_open"),
        sql.human(dialect, "machine_click"),
    )
    return f"""
        WITH RECURSIVE {sql.MERGE_ROOTS},
        merged(profile_id) AS (SELECT gone FROM merge_roots UNION SELECT root FROM merge_roots),
        a AS (
            SELECT x.profile_id, x.arm, x.assigned_at FROM experiment_assignments x
            WHERE x.experiment = ? AND x.assigned_at <= ?
              AND x.profile_id NOT IN (SELECT profile_id FROM merged)
            UNION ALL
            SELECT profile_id, arm, assigned_at FROM (
                SELECT coalesce(r.root, x.profile_id) AS profile_id, x.arm, x.assigned_at,
                       row_number() OVER (PARTITION BY coalesce(r.root, x.profile_id)
                                          ORDER BY x.assigned_at, x.profile_id) AS k
                FROM experiment_assignments x LEFT JOIN merge_roots r ON r.gone = x.profile_id
                WHERE x.experiment = ? AND x.assigned_at <= ?
                  AND x.profile_id IN (SELECT profile_id FROM merged)
            ) m WHERE k = 1
        ),
        g AS (
            SELECT profile_id,
                   max(CASE WHEN event = '{OPENED}' AND {human_open} THEN 1 ELSE 0 END) AS o,
                   max(CASE WHEN event = '{CLICKED}' AND {human_click} THEN 1 ELSE 0 END) AS c
            FROM events
            WHERE type = 'track' AND event IN ('{OPENED}', '{CLICKED}')
              AND ({campaign} = ? OR {campaign} LIKE ?) AND timestamp <= ?
            GROUP BY profile_id
        ),
        e AS (
            SELECT profile_id, timestamp, {revenue} AS revenue FROM events
            WHERE type = 'track' AND event = ? AND timestamp <= ?
        ),
        v AS (
            SELECT a.profile_id, sum(coalesce(e.revenue, 0)) AS revenue
            FROM a JOIN e ON e.profile_id = a.profile_id
            WHERE e.timestamp > a.assigned_at AND e.timestamp <= a.assigned_at + {window}
            GROUP BY a.profile_id
        )
        SELECT a.arm, count(*), coalesce(sum(g.o), 0), coalesce(sum(g.c), 0),
               count(v.profile_id), coalesce(sum(v.revenue), 0),
               coalesce(sum(v.revenue * v.revenue), 0)
        FROM a LEFT JOIN g ON g.profile_id = a.profile_id
               LEFT JOIN v ON v.profile_id = a.profile_id
        GROUP BY a.arm
    """


def _fill(arms: list[Arm], rows: list[tuple[Any, ...]]) -> None:
    by_name = {a.name: a for a in arms}
    for name, n, opened, clicked, converted, revenue, squares in rows:
        arm = by_name.get(name)
        if arm is None:  # an arm removed from the definition: shown, weight 0
            arm = Arm(name, 0.0, False)
            arms.append(arm)
            by_name[name] = arm
        arm.n, arm.opened, arm.clicked, arm.converted = (
            int(n),
            int(opened),
            int(clicked),
            int(converted),
        )
        arm.revenue, arm.revenue_squares = float(revenue), float(squares)


def experiment_report(
    store: Store, defn: WorkspaceDef, name: str, as_of: datetime, *, start: datetime | None = None
) -> ExperimentReport:
    """Return the report of experiment ``name`` (or ``global_holdout``) at ``as_of``.

    Raises:
        UnknownExperimentError: No such experiment; or one removed from the workspace whose
            assignments are still stored (said so); or ``global_holdout`` in a workspace
            without one.
    """
    settings = defn.measure
    if name == GLOBAL_HOLDOUT:
        return _global_report(store, defn, as_of, start)
    if name not in experiments_of(defn):
        _refuse_removed(store, name)
    exp = find_experiment(defn, name)
    arms = [Arm(v.name, v.weight, v.holdout) for v in exp.variants]
    at = utcnow_naive(as_of)
    query = arm_counts_query(
        store.dialect,
        sql.interval(settings.window),
        sql.revenue(store.dialect, settings.revenue_properties),
    )
    # a journey step's messages carry its campaign and ``:ENTRY``; a campaign's, its name
    like = f"{exp.campaign}:%" if exp.campaign.startswith("journey:") else exp.campaign
    params = [name, at, name, at, exp.campaign, like, at, settings.conversion_event, at]
    rows = store.fetchall(query, params)
    _fill(arms, rows)
    report = ExperimentReport(
        name, exp.campaign, exp.metric, _method(exp.metric, exp.sequential), exp.alpha,
        as_of, arms, stats.srm([a.n for a in arms], [a.weight for a in arms]),
    )  # fmt: skip
    report = judge(report)
    if not any(a.n for a in arms):
        report.conclusion = _nobody_yet(name, exp.campaign, as_of)
    report.winner = recorded_winner(store, name)
    if report.winner is not None:
        report.conclusion += f" Winner picked: {report.winner['arm']} (sent to the rest)."
    return report


def _nobody_yet(name: str, campaign: str, as_of: datetime) -> str:
    """The conclusion of an experiment nobody was assigned to by ``as_of``."""
    if campaign.startswith("journey:"):
        what = f"journey step {name} assigns them as it sends (`segmint journeys run`)"
    else:
        what = f"campaign {campaign} assigns them as it sends (`segmint campaign send {campaign}`)"
    return f"Nobody is in an arm yet as of {as_of.isoformat()}: {what}."


WINNER_KEY = "measure.winner."
"""``meta`` key prefix of an experiment's recorded auto-winner decision."""


def recorded_winner(store: Store, name: str) -> dict[str, Any] | None:
    """The experiment's recorded winner decision, if one was made."""
    found = read_meta(store, WINNER_KEY + name)
    return None if found is None else dict(json.loads(found))


def pick_winner(report: ExperimentReport, min_sample: int) -> str | None:
    """The arm a judged report lets win now, or None (see :class:`AutoWinnerDef`).

    Every arm with a weight needs ``min_sample`` people and the SRM check must pass; then
    the significant (Holm-corrected) arm with the largest lift over the control wins, or
    the control if it beats every other arm significantly.
    """
    if not report.arms or not report.srm.ok:
        return None
    if any(a.n < min_sample for a in report.arms if a.weight > 0):
        return None
    holdout = {a.name for a in report.arms if a.holdout}
    significant = {n: c for n, c in report.comparisons.items() if c["significant"]}
    better = [(c["lift"], n) for n, c in significant.items() if c["lift"] > 0 and n not in holdout]
    if better:
        return max(better)[1]
    control = report.arms[0]
    beaten = len(significant) == len(report.comparisons) > 0 and all(
        c["lift"] < 0 for c in significant.values()
    )
    return control.name if beaten and not control.holdout else None


def decide_winner(
    store: Store, defn: WorkspaceDef, name: str, as_of: datetime, *, record: bool = True
) -> str | None:
    """The experiment's winner: the recorded one, else one picked now, if any.

    A winner is picked when the experiment has ``auto_winner`` and the evidence allows
    (:func:`pick_winner`); it is recorded with its evidence unless ``record`` is False.
    """
    found = recorded_winner(store, name)
    if found is not None:
        return str(found["arm"])
    exp = find_experiment(defn, name)
    if exp.auto_winner is None:
        return None
    report = experiment_report(store, defn, name, as_of)
    arm = pick_winner(report, exp.auto_winner.min_sample)
    if arm is None or not record:
        return arm
    comparison = report.comparisons.get(arm, {})
    decision = {
        "arm": arm, "decided_at": as_of.isoformat(), "metric": report.metric,
        "method": report.method, "n": {a.name: a.n for a in report.arms},
        "lift": comparison.get("lift"), "p_value_holm": comparison.get("p_value_holm"),
        "min_sample": exp.auto_winner.min_sample,
    }  # fmt: skip
    with store.transaction():
        write_meta(store, WINNER_KEY + name, json.dumps(decision))
    return arm


def _method(metric: str, sequential: bool) -> str:
    if sequential:
        return "sequential"
    return "welch_t" if metric == "revenue" else "z"


def _global_report(
    store: Store, defn: WorkspaceDef, as_of: datetime, start: datetime | None
) -> ExperimentReport:
    settings = defn.measure
    percent = settings.global_holdout_percent
    if not percent:  # unknown, like any other name (the API answers 404, not 500)
        raise UnknownExperimentError(
            "no global holdout: set measure.global_holdout_percent in segmint.yaml (e.g. 5)"
        )
    at = utcnow_naive(as_of)
    people = store.fetchall(
        "SELECT p.profile_id FROM profiles p WHERE p.merged_into IS NULL AND EXISTS ("
        "SELECT 1 FROM events e WHERE e.profile_id = p.profile_id AND e.timestamp <= ?)",
        [at],
    )
    lower = "AND timestamp > ? " if start is not None else ""
    params: list[Any] = [settings.conversion_event, at]
    if start is not None:
        params.append(utcnow_naive(start))
    revenue = sql.revenue(store.dialect, settings.revenue_properties)
    conversions = {
        pid: float(r)
        for pid, r in store.fetchall(
            f"SELECT profile_id, sum(coalesce({revenue}, 0)) FROM events WHERE type = 'track' "
            f"AND event = ? AND timestamp <= ? {lower}GROUP BY profile_id",
            params,
        )
    }
    held = Arm("holdout", percent, True)
    marketed = Arm("marketed", 100.0 - percent, False)
    for (pid,) in people:
        arm = held if in_global_holdout(pid, percent) else marketed
        arm.n += 1
        if pid in conversions:
            value = conversions[pid]
            arm.converted += 1
            arm.revenue += value
            arm.revenue_squares += value * value
    arms = [held, marketed]
    report = ExperimentReport(
        GLOBAL_HOLDOUT, None, "conversion", "z", 0.05, as_of, arms,
        stats.srm([a.n for a in arms], [a.weight for a in arms]),
    )  # fmt: skip
    return judge(report)


def metric_for(primary: str, control: Arm, arm: Arm) -> str:
    """Return the metric an arm is judged on: the primary one, or conversion with a holdout.

    A holdout is sent nothing, so it never opens or clicks: what a send adds over nothing is
    read on conversion.
    """
    if primary in ("open", "click") and (control.holdout or arm.holdout):
        return "conversion"
    return primary


def judge(report: ExperimentReport) -> ExperimentReport:
    """Compare every arm with the control (the first), correct for several, conclude."""
    if not report.arms:
        report.conclusion = "No assignments yet: send the campaign first."
        return report
    control, others = report.arms[0], report.arms[1:]
    results = {}
    metrics = {}
    for arm in others:
        metric = metric_for(report.metric, control, arm)
        metrics[arm.name] = metric
        c, t = control.sample(metric), arm.sample(metric)
        if report.method == "sequential":
            freq = stats.sequential_test(c, t, report.alpha)
        elif report.method == "welch_t":
            freq = stats.welch_test(c, t, report.alpha)
        else:
            freq = stats.z_test(c, t, report.alpha)
        bayes = stats.chance_to_win(c, t, report.alpha)
        results[arm.name] = (freq, bayes)
    adjusted = stats.holm([f.p_value for f, _ in results.values()])
    for (arm_name, (freq, bayes)), p_adj in zip(results.items(), adjusted, strict=True):
        report.comparisons[arm_name] = {
            "metric": metrics[arm_name], "lift": freq.lift, "ci": list(freq.ci),
            "p_value": freq.p_value,
            "p_value_holm": p_adj, "chance_to_win": bayes.chance_to_win,
            "significant": freq.error is None and p_adj < report.alpha, "error": freq.error,
        }  # fmt: skip
    report.conclusion = conclude(report)
    return report


def conclude(report: ExperimentReport) -> str:
    """Return the plain-words reading of a judged report."""
    if not report.srm.ok:
        return (
            f"Sample ratio mismatch (p = {report.srm.p_value:.2g}): the arms' sizes do not "
            "fit their weights, so the assignment is broken. No result is shown; find the "
            "cause (a change of weights, a filter after assignment) before reading anything."
        )
    control = report.arms[0].name
    lines = []
    for arm, c in report.comparisons.items():
        if c["error"]:
            lines.append(f"{arm} vs {control}: cannot compare yet ({c['error']}).")
        elif c["significant"]:
            word = "better" if c["lift"] > 0 else "worse"
            lines.append(
                f"{arm} is {word} than {control} on {c['metric']}: {c['lift']:+.1%} "
                f"({1 - report.alpha:.0%} interval {c['ci'][0]:+.1%} to {c['ci'][1]:+.1%}), "
                f"significant after Holm's correction (p = {c['p_value_holm']:.3g})."
            )
        else:
            lines.append(
                f"{arm} vs {control}: no significant difference on {c['metric']} yet "
                f"({c['lift']:+.1%}, p = {c['p_value_holm']:.3g}); chance to beat "
                f"{control}: {c['chance_to_win']:.0%}."
            )
    return " ".join(lines)


def summary_lines(data: dict[str, Any]) -> tuple[str, str]:
    """Return the headline and the conclusion of a report's :meth:`~ExperimentReport.to_dict`."""
    srm = data["srm"]
    verdict = "ok" if srm["ok"] else "MISMATCH"
    control = data["arms"][0]["arm"] if data["arms"] else "none"
    held = [a["arm"] for a in data["arms"] if a["holdout"]]
    headline = (
        f"experiment {data['experiment']} ({data['campaign'] or 'all marketing'}), metric "
        f"{data['metric']}, method {data['method']}, as of {data['as_of']}; control "
        f"{control}"
        + (f", holdout {', '.join(held)} (judged on conversion)" if held else "")
        + f"; sample ratio {verdict} (p = {srm['p_value']:.3g})"
    )
    return headline, str(data["conclusion"])


def summary_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Return the columns and rows of a report's table for people (per arm).

    Lifts, intervals and p-values are left out while the sample ratio is off.
    """
    columns = ["arm", "n", "opened", "converted", "lift", "interval", "p Holm", "win"]
    rows = []
    for arm in data["arms"]:
        shown = data["srm"]["ok"] and not arm["control"] and arm.get("error") is None
        rows.append([
            arm["arm"], f"{arm['n']:,}", _pct(arm["open_rate"]), _pct(arm["conversion_rate"]),
            _signed(arm.get("lift")) if shown else "",
            f"{_signed(arm['ci'][0])}..{_signed(arm['ci'][1])}" if shown else "",
            f"{arm['p_value_holm']:.3g}" if shown else "",
            _pct(arm.get("chance_to_win")) if shown else "",
        ])  # fmt: skip
    return columns, rows


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.0%}" if abs(value) >= 1 else f"{value:+.1%}"
