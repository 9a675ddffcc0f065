"""``segmint export dbt DIR``: the workspace's traits and segments as a dbt project.

The project computes from one events source what ``segmint refresh`` computes in the
store, with the same SQL (:func:`segmint.traits.sqlgen.trait_query` and
:func:`segmint.membership.segsql.membership_query`), rendered for the adapter::

    dbt_project.yml  profiles.yml (duckdb or postgres, settings from environment variables)
    macros/segmint_now.sql        the evaluation instant: var('segmint_as_of') or the
                                  database's current UTC time
    models/sources.yml            the events table (Segment columns, mapped as asked)
    models/segmint_traits.sql     one row per profile, a column per trait (table)
    models/segments/segment_<name>.sql   one model per segment: (profile_id, segment)
    models/segmint_memberships.sql       every member of every segment (table)
    models/schema.yml             docs from descriptions; unique/not_null/accepted_values
    tests/*.sql                   one membership per (profile, segment); one segment per
                                  profile and exclusive group

Nothing in the project downloads anything: no ``packages.yml``, and anonymous usage
statistics are switched off in ``dbt_project.yml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlglot import exp

from segmint.config.model import WorkspaceDef
from segmint.membership.compiled import CompiledSegments
from segmint.membership.segsql import membership_query
from segmint.rules import SqlNow
from segmint.traits.source import EventSource
from segmint.traits.sqlgen import trait_query

ADAPTERS = ("duckdb", "postgres")
"""The dbt adapters a project can be written for (the dialects segmint's SQL is exact on)."""

_NOW = "__segmint_now__"
_SOURCE = "__segmint_source__"
_TRAITS = "__segmint_traits__"
_SEGMENT = "__segmint_segment_{}__"

_MACRO = """\
{% macro segmint_now() -%}
  {%- if var('segmint_as_of', none) -%}
    cast('{{ var("segmint_as_of") }}' as timestamp)
  {%- else -%}
    cast(current_timestamp at time zone 'UTC' as timestamp)
  {%- endif -%}
{%- endmacro %}
"""

_PROFILES = {
    "duckdb": {
        "type": "duckdb",
        "path": "{{ env_var('SEGMINT_DBT_DUCKDB', 'warehouse.duckdb') }}",
        "threads": 1,
    },
    "postgres": {
        "type": "postgres",
        "host": "{{ env_var('SEGMINT_DBT_PG_HOST', '127.0.0.1') }}",
        "port": "{{ env_var('SEGMINT_DBT_PG_PORT', '5432') | as_number }}",
        "user": "{{ env_var('SEGMINT_DBT_PG_USER', 'postgres') }}",
        "password": "{{ env_var('SEGMINT_DBT_PG_PASSWORD', '') }}",
        "dbname": "{{ env_var('SEGMINT_DBT_PG_DBNAME', 'postgres') }}",
        "schema": "{{ env_var('SEGMINT_DBT_PG_SCHEMA', 'segmint') }}",
        "threads": 1,
    },
}


def project_name(workspace: str) -> str:
    """A dbt project name (letters, digits, underscores) for the workspace."""
    cleaned = re.sub(r"\W+", "_", workspace.lower()).strip("_") or "segmint"
    return cleaned if cleaned[0].isalpha() else f"segmint_{cleaned}"


def export_project(
    definition: WorkspaceDef, directory: Path, *, dialect: str, events: EventSource
) -> list[Path]:
    """Write the dbt project for ``definition`` into ``directory``.

    Args:
        definition: The workspace.
        directory: Where to write (created; files segmint writes are replaced, and the
            models and tests of segments and groups no longer defined removed).
        dialect: The adapter, one of :data:`ADAPTERS`.
        events: The events table (``SCHEMA.TABLE``; the schema is the dbt source's) and the
            mapping of its columns.

    Returns:
        The files written.

    Raises:
        RuleNameError: For an adapter segmint cannot write exact SQL for.
        UnsupportedTraitError: For a trait the adapter cannot compute.
    """
    from segmint.common import did_you_mean
    from segmint.rules import RuleNameError

    if dialect not in ADAPTERS:
        hint = did_you_mean(dialect, ADAPTERS) or f"one of {', '.join(ADAPTERS)}"
        raise RuleNameError(f"no dbt adapter for dialect '{dialect}'", hint=hint)
    compiled = CompiledSegments(definition)
    writer = _Writer(directory, dialect)
    writer.project(project_name(definition.name))
    writer.text("macros/segmint_now.sql", _MACRO)
    writer.yaml("models/sources.yml", _sources(events))
    writer.model("segmint_traits", _traits_sql(compiled, dialect, events), "table")
    for name in compiled.plan.names:
        writer.model(f"segments/segment_{name}", _segment_sql(compiled, dialect, name), "view")
    writer.model("segmint_memberships", _memberships_sql(compiled, dialect), "table")
    writer.yaml("models/schema.yml", _schema(compiled, definition))
    writer.text("tests/segmint_one_row_per_membership.sql", _unique_pairs())
    for group, names in _groups(compiled).items():
        writer.text(f"tests/segmint_exclusive_{group}.sql", _exclusive(group, names))
    writer.drop_stale(OWN_FILES)
    return writer.written


OWN_FILES = ("models/segments/segment_*.sql", "tests/segmint_exclusive_*.sql")
"""The files named after a segment or group: an export removes those it did not write now
(a segment or group gone from the workspace), so that dbt does not build it from a rule that
no longer exists. The project's other files are the user's to keep."""


class _Writer:
    def __init__(self, directory: Path, dialect: str) -> None:
        self.root = directory
        self.dialect = dialect
        self.written: list[Path] = []

    def drop_stale(self, patterns: tuple[str, ...]) -> None:
        """Delete files matching ``patterns`` that this export did not write."""
        for pattern in patterns:
            for path in self.root.glob(pattern):
                if path not in self.written:
                    path.unlink()

    def text(self, relative: str, content: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        self.written.append(path)

    def yaml(self, relative: str, data: Any) -> None:
        from io import StringIO

        yaml = YAML()
        yaml.default_flow_style = False
        yaml.width = 100
        out = StringIO()
        yaml.dump(data, out)
        self.text(relative, out.getvalue())

    def project(self, name: str) -> None:
        self.yaml(
            "dbt_project.yml",
            {
                "name": name,
                "version": "1.0.0",
                "config-version": 2,
                "profile": "segmint",
                "model-paths": ["models"],
                "macro-paths": ["macros"],
                "test-paths": ["tests"],
                "flags": {"send_anonymous_usage_stats": False},
                "vars": {"segmint_as_of": None},
                "models": {name: {"+materialized": "view"}},
            },
        )
        target = dict(_PROFILES[self.dialect])
        self.yaml(
            "profiles.yml", {"segmint": {"target": self.dialect, "outputs": {self.dialect: target}}}
        )

    def model(self, name: str, sql: str, materialized: str) -> None:
        header = f"{{{{ config(materialized='{materialized}') }}}}\n\n"
        self.text(f"models/{name}.sql", header + sql + "\n")


def _render(query: exp.Expr, dialect: str) -> str:
    """Render, then put dbt's Jinja in place of the placeholder names."""
    text = query.sql(dialect=dialect, pretty=True)
    text = text.replace(_NOW, "{{ segmint_now() }}")
    text = text.replace(_SOURCE, "{{ source('segmint', 'events') }}")
    text = text.replace(_TRAITS, "{{ ref('segmint_traits') }}")
    return re.sub(r"__segmint_segment_(\w+?)__", r"{{ ref('segment_\1') }}", text)


def _now() -> SqlNow:
    return SqlNow(base=exp.column(_NOW))


def _traits_sql(compiled: CompiledSegments, dialect: str, events: EventSource) -> str:
    source = EventSource(_SOURCE, events.columns)
    return _render(trait_query(compiled.catalog, dialect, _now(), source=source), dialect)


def _segment_sql(compiled: CompiledSegments, dialect: str, name: str) -> str:
    traits = exp.to_table(_TRAITS)
    query = membership_query(
        compiled, dialect=dialect, as_of=_now(), segments=[name], source=traits
    )
    return _render(query, dialect)


def _memberships_sql(compiled: CompiledSegments, dialect: str) -> str:
    selects = [
        exp.select("profile_id", "segment").from_(exp.to_table(_SEGMENT.format(name)))
        for name in compiled.plan.names
    ]
    if not selects:
        none = exp.alias_(exp.cast(exp.null(), exp.DataType.build("text")), "segment")
        pid = exp.alias_(exp.cast(exp.null(), exp.DataType.build("text")), "profile_id")
        return _render(exp.select(pid, none).where(exp.false()), dialect)
    query: exp.Query = selects[0]
    for select in selects[1:]:
        query = exp.union(query, select, distinct=False)
    return _render(query, dialect)


def _sources(events: EventSource) -> dict[str, Any]:
    *schema, table = events.table.split(".")
    source: dict[str, Any] = {
        "name": "segmint",
        "description": "Segment-style events (track, identify, page …), one row per message.",
        "tables": [{"name": "events", "identifier": table}],
    }
    source["schema"] = schema[-1] if schema else "{{ target.schema }}"
    if len(schema) > 1:
        source["database"] = schema[-2]
    return {"version": 2, "sources": [source]}


def _schema(compiled: CompiledSegments, definition: WorkspaceDef) -> dict[str, Any]:
    names = list(compiled.plan.names)
    traits = [
        {"name": spec.name, "description": spec.description or spec.definition}
        for spec in compiled.catalog
    ]
    pid = {"name": "profile_id", "data_tests": ["unique", "not_null"]}
    models: list[dict[str, Any]] = [
        {
            "name": "segmint_traits",
            "description": f"Traits of every profile of workspace '{definition.name}'.",
            "columns": [{**pid, "description": "The profile."}, *traits],
        }
    ]
    for name in names:
        spec = compiled.plan.spec(name)
        how = "the group's default" if spec.default else f"rule: {spec.rule}"
        where = f" (group {spec.group}, priority {spec.priority})" if spec.group else ""
        text = (spec.description or f"Members of segment {name}.") + f" {how}{where}"
        models.append({"name": f"segment_{name}", "description": text, "columns": [dict(pid)]})
    pair = [
        {"name": "profile_id", "data_tests": ["not_null"]},
        {"name": "segment",
         "data_tests": ["not_null", {"accepted_values": {"arguments": {"values": names}}}]},
    ]  # fmt: skip
    models.append(
        {
            "name": "segmint_memberships",
            "description": "One row per (profile, segment) membership, as segmint decides.",
            "columns": pair,
        }
    )
    return {"version": 2, "models": models}


def _groups(compiled: CompiledSegments) -> dict[str, list[str]]:
    return {u.group: list(u.names) for u in compiled.plan.units if u.group is not None}


def _unique_pairs() -> str:
    return (
        "-- A profile holds a segment at most once.\n"
        "select profile_id, segment, count(*) as n\n"
        "from {{ ref('segmint_memberships') }}\n"
        "group by profile_id, segment\nhaving count(*) > 1\n"
    )


def _exclusive(group: str, names: list[str]) -> str:
    listed = ", ".join(exp.Literal.string(n).sql() for n in names)
    return (
        f"-- Exclusive group {group}: a profile holds at most one of its segments.\n"
        "select profile_id, count(*) as n\n"
        "from {{ ref('segmint_memberships') }}\n"
        f"where segment in ({listed})\n"
        "group by profile_id\nhaving count(*) > 1\n"
    )
