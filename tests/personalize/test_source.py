"""The tag scanner that protects Jinja tags at compile time agrees with Jinja's lexer."""

from __future__ import annotations

import jinja2
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.personalize.source import protect, restore, scan

KINDS = {
    "comment_begin": "comment",
    "variable_begin": "expression",
    "raw_begin": "raw",
    "block_begin": "statement",
}
PIECES = [
    "text ", "{", "}", "%", "#", "'", '"', "<p>", "</p>", "\n",
    "{{ x }}", "{{- x -}}", '{{ "}}" }}', "{{ '%}' ~ x }}", '{{ "a\\"}}" }}',
    "{% if x %}", "{% endif %}", "{%- if x -%}", "{%+ if x %}", '{% set y = "%}" %}',
    "{# c #}", "{# {{ x }} #}", "{# %} #}",
    "{% raw %}{{ not }}{% endraw %}", "{%- raw -%}{% x %}{%- endraw -%}",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
def test_scanner_finds_exactly_the_lexers_tags(source: str) -> None:
    env = jinja2.Environment()
    try:
        env.parse(source)
    except jinja2.TemplateSyntaxError:
        return  # segmint syntax-checks every file before it scans it
    expected = [KINDS[t] for _, t, _ in env.lex(source) if t in KINDS]
    assert [tag.kind for tag in scan(source)] == expected
    table: list[str] = []
    protected = protect(source, table, lambda tag, text: False)
    assert [t for _, t, _ in env.lex(protected) if t in KINDS] == []  # only data is left
    assert restore(protected, table) == source


def test_a_comment_opener_that_ends_the_source_is_an_empty_comment() -> None:
    # Found by the property test above: Jinja lexes a trailing "{#" as a comment.
    assert [tag.kind for tag in scan("text {#")] == ["comment"]
    assert [tag.kind for tag in scan("{# a")] == []  # unclosed with text after: no tag
