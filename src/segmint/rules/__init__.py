"""The rule language: one AST, a text and a JSON form, a type checker, and two compilers.

``parse`` reads the text form; ``str(expr)`` writes it back canonically; ``to_json`` /
``from_json`` are the JSON form. ``check`` types a rule against a :class:`TraitSchema`.
``compile_python`` and ``compile_sql`` agree on every rule, NULL included: the semantics are
written once in :mod:`segmint.rules.semantics`.

Time: ``next_transition`` (Python, per row; its leaves compiled once as ``LeafTimer``s from
``time_leaves``) and ``next_transition_query`` (SQL, per table row) say when time alone may
next flip a rule. Other stages import from this package only, never its modules.
"""

from __future__ import annotations

from segmint.rules.ast import (
    And,
    Arithmetic,
    Between,
    Compare,
    DaysSince,
    Expr,
    InList,
    InSegment,
    Interval,
    IsNull,
    LastPerformed,
    Like,
    ListContains,
    Literal,
    Not,
    Now,
    Or,
    Performed,
    StringMatch,
    TraitRef,
    Within,
)
from segmint.rules.checker import check, diagnose
from segmint.rules.deps import Dependencies, dependencies
from segmint.rules.errors import (
    RuleCycleError,
    RuleError,
    RuleNameError,
    RuleSyntaxError,
    RuleTypeError,
    Span,
)
from segmint.rules.jsonform import from_json, to_json
from segmint.rules.lowering import TIMESTAMP_TARGET, EventAggregate, lower_events, transform
from segmint.rules.parser import parse
from segmint.rules.pycompile import Evaluator, compile_python
from segmint.rules.schema import RuleType, TraitSchema
from segmint.rules.semantics import SEGMENTS_KEY
from segmint.rules.simplify import Simplification, simplify
from segmint.rules.sqlcompile import (
    DIALECTS,
    Instant,
    SqlNow,
    column,
    compile_sql,
    memberships_resolver,
    segment_column,
)
from segmint.rules.timesql import add_micros, least, next_transition_query
from segmint.rules.timing import LeafTimer, next_transition, time_leaves
from segmint.rules.workspace import check_workspace, workspace_schema

__all__ = [
    "DIALECTS",
    "SEGMENTS_KEY",
    "TIMESTAMP_TARGET",
    "And",
    "Arithmetic",
    "Between",
    "Compare",
    "DaysSince",
    "Dependencies",
    "EventAggregate",
    "Evaluator",
    "Expr",
    "InList",
    "InSegment",
    "Instant",
    "Interval",
    "IsNull",
    "LastPerformed",
    "LeafTimer",
    "Like",
    "ListContains",
    "Literal",
    "Not",
    "Now",
    "Or",
    "Performed",
    "RuleCycleError",
    "RuleError",
    "RuleNameError",
    "RuleSyntaxError",
    "RuleType",
    "RuleTypeError",
    "Simplification",
    "Span",
    "SqlNow",
    "StringMatch",
    "TraitRef",
    "TraitSchema",
    "Within",
    "add_micros",
    "check",
    "check_workspace",
    "column",
    "compile_python",
    "compile_sql",
    "dependencies",
    "diagnose",
    "from_json",
    "least",
    "lower_events",
    "memberships_resolver",
    "next_transition",
    "next_transition_query",
    "parse",
    "segment_column",
    "simplify",
    "time_leaves",
    "to_json",
    "transform",
    "workspace_schema",
]
