"""SQL pieces measurement shares: event properties read under the one coercion rule."""

from __future__ import annotations

from datetime import timedelta

from segmint.traits.sqldialect import dialect_for


def prop(dialect: str, name: str, kind: str) -> str:
    """Return SQL for ``properties.<name>`` under :mod:`segmint.traits.coerce`'s rule."""
    expr = dialect_for(dialect).coerce("properties", (name,), kind)  # type: ignore[arg-type]
    return expr.sql(dialect=dialect)


def revenue(dialect: str, names: tuple[str, ...]) -> str:
    """Return SQL for an event's revenue: the first of ``names`` that is a number."""
    parts = [prop(dialect, n, "number") for n in names]
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def campaign(dialect: str) -> str:
    """Return SQL for an engagement event's ``properties.campaign`` (JSON text as written).

    segmint writes it as a string (:mod:`segmint.deliver.engagement`), so the plain text
    read is exact here and spares the type checks of the ``text`` coercion.
    """
    return dialect_for(dialect).text("properties", ("campaign",)).sql(dialect=dialect)


def human(dialect: str, flag: str) -> str:
    """Return SQL that is true unless ``properties.<flag>`` (machine open/click) is true."""
    return f"NOT coalesce({prop(dialect, flag, 'boolean')}, FALSE)"


def interval(span: timedelta) -> str:
    """Return an SQL interval literal of ``span`` (exact to the microsecond)."""
    micros = span // timedelta(microseconds=1)
    return f"INTERVAL '{int(micros)} microseconds'"


MERGE_ROOTS = """
    merge_hops(gone, root) AS (
        SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL
        UNION
        SELECT h.gone, p.merged_into FROM merge_hops h
        JOIN profiles p ON p.profile_id = h.root WHERE p.merged_into IS NOT NULL
    ),
    merge_roots(gone, root) AS (
        SELECT gone, root FROM merge_hops h WHERE NOT EXISTS (
            SELECT 1 FROM profiles p WHERE p.profile_id = h.root AND p.merged_into IS NOT NULL)
    )"""
"""CTEs (for a ``WITH RECURSIVE``) mapping every profile merged away to the one surviving it.

The SQL twin of :func:`segmint.intake.identity.merge_roots`: a merged-away profile's sends
and experiment arm count for its survivor (``LEFT JOIN merge_roots`` and
``coalesce(root, profile_id)``). Events need no mapping: intake moves them on merge.
"""
