"""Template lint: unknown names, missing fallbacks, segment names, syntax errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segmint.personalize.lint import LintIssue, lint_templates
from segmint.workspace import Workspace

Write = Callable[[str, str], None]


def lint(workspace: Workspace, *names: str) -> list[LintIssue]:
    issues, _ = lint_templates(workspace.templates_dir, workspace.definition, names or None)
    return issues


def codes(issues: list[LintIssue]) -> list[tuple[str, str, int, int]]:
    return [(i.code, i.severity, i.line, i.column) for i in issues]


def test_example_templates_are_clean(workspace: Workspace) -> None:
    assert lint(workspace) == []
    issues, sources = lint_templates(workspace.templates_dir, workspace.definition, ["lifecycle"])
    assert issues == [] and sorted(sources) == ["layout.html", "lifecycle.html"]


def test_unknown_variable_with_suggestion(workspace: Workspace, write_template: Write) -> None:
    write_template("a.html", "<p>Hi</p>\n<p>{{ frist_name }} {% set x = 1 %}{{ x }}</p>")
    (issue,) = lint(workspace, "a")
    assert (issue.code, issue.severity, issue.line, issue.column) == (
        "unknown-variable", "error", 2, 7,
    )  # fmt: skip
    assert issue.hint == "did you mean 'first_name'?"
    assert issue.length == len("frist_name")


def test_builtins_extras_and_globals_are_known(workspace: Workspace, write_template: Write) -> None:
    write_template(
        "a.html",
        "{% block subject %}Hi{% endblock %}"
        "{{ profile_id }}{{ segment }}{{ segments }}{{ subject }}{{ unsubscribe_url }}"
        "{{ preferences_url }}{{ last_seen_at | date }}{{ event_count }}"
        "{% for i in range(3) %}{{ i }}{% endfor %}{% set ns = namespace(a=1) %}{{ ns.a }}",
    )
    assert lint(workspace, "a") == []


def test_optional_trait_without_fallback(workspace: Workspace, write_template: Write) -> None:
    write_template(
        "a.html",
        "{{ first_name }}\n"  # identify, no default: warn
        "{{ first_name | default('x') | title }}\n"  # fallback
        "{% if first_name %}{{ first_name | title }}{% endif %}\n"  # guarded
        "{{ first_name if first_name else 'x' }}\n"  # not a bare merge tag
        "{{ timezone }}{{ orders }}\n"  # default given / a count is never null
        "{{ avg_order_value | money('EUR') }}\n"  # null without orders: warn
        "{% block subject %}Hi{% endblock %}",
    )
    assert codes(lint(workspace, "a")) == [
        ("no-fallback", "warning", 1, 4),
        ("no-fallback", "warning", 6, 4),
    ]


def test_segment_names(workspace: Workspace, write_template: Write) -> None:
    write_template(
        "a.html",
        "{% if segment == 'vipp' %}{% endif %}\n"
        "{% if 'cart_abandoner' in segments %}{% endif %}\n"
        "{% if segment in ['vip', 'loyal'] %}{% endif %}\n"
        "{% if 'high_value' in segments %}{% elif segment == 'high_value' %}{% endif %}\n"
        "{% if segment != 'new_customer' and 'churned' not in segments %}{% endif %}\n",
    )
    issues = lint(workspace, "a")
    assert codes(issues) == [
        ("unknown-segment", "error", 1, 18),
        ("unknown-segment", "error", 2, 7),
        ("unknown-segment", "error", 3, 26),
        ("segment-not-in-group", "warning", 4, 53),
    ]
    assert issues[0].hint == "did you mean 'vip'?"
    assert issues[1].hint == "did you mean 'cart_abandoners'?"
    assert issues[3].hint == "use 'high_value' in segments"


def test_syntax_error_line_and_column(workspace: Workspace, write_template: Write) -> None:
    write_template("a.html", "<p>ok</p>\n{% if x %}\n<p>{% endfro %}</p>\n")
    (issue,) = lint(workspace, "a")
    assert (issue.code, issue.line, issue.column) == ("syntax", 3, 7)
    assert "endfro" in issue.message
    text = issue.detailed_message("<p>ok</p>\n{% if x %}\n<p>{% endfro %}</p>\n")
    assert text.splitlines()[0].startswith("templates/a.html:3:7: error:")
    assert text.splitlines()[2] == "    |       ^"


def test_unknown_filter_is_a_syntax_error(workspace: Workspace, write_template: Write) -> None:
    write_template("a.html", "{{ orders | moneyy('EUR') }}")
    (issue,) = lint(workspace, "a")
    assert issue.code == "syntax" and "moneyy" in issue.message


def test_lint_follows_layouts_and_partials(workspace: Workspace, write_template: Write) -> None:
    write_template("base.html", "{{ nope }}{% block content %}{% endblock %}")
    write_template("part.html", "{{ nada }}")
    write_template("a.html", '{% extends "base.html" %}{% block content %}'
                   '{% include "part.html" %}{% endblock %}'
                   '{% block subject %}Hi{% endblock %}')  # fmt: skip
    issues = lint(workspace, "a")
    assert sorted((i.template, i.code) for i in issues) == [
        ("base.html", "unknown-variable"),
        ("part.html", "unknown-variable"),
    ]


def test_missing_layout_or_partial(workspace: Workspace, write_template: Write) -> None:
    write_template(
        "a.html",
        '{% extends "layuot.html" %}\n{% block content %}{% include "nope.html" %}'
        '{% include "maybe.html" ignore missing %}{% endblock %}',
    )
    issues = lint(workspace)
    assert [(i.template, i.code, i.line, i.column, i.hint) for i in issues] == [
        ("a.html", "missing-template", 1, 13, "did you mean 'layout.html'?"),
        ("a.html", "missing-template", 2, 32, None),  # 'nope' is not near 'a'
    ]


def test_lint_all_skips_non_templates(workspace: Workspace) -> None:
    (workspace.templates_dir / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (workspace.templates_dir / "latin1.html").write_bytes(b"caf\xe9")
    issues = lint(workspace)
    assert [(i.template, i.code) for i in issues] == [("latin1.html", "encoding")]


def test_missing_template(workspace: Workspace) -> None:
    (issue,) = lint(workspace, "ghost")
    assert issue.code == "not-found" and issue.template == "ghost.html"
    (issue,) = lint(workspace, "../segmint.yaml")  # names never leave templates/
    assert issue.code == "not-found"


def test_an_email_without_subject_is_an_error(workspace: Workspace, write_template: Write) -> None:
    write_template("base.html", "<html>{% block content %}{% endblock %}</html>")
    write_template("part.html", "<p>{{ orders }}</p>")
    write_template("a.html", '{% extends "base.html" %}{% block content %}'
                   '{% include "part.html" %}{% endblock %}')  # fmt: skip
    write_template("blank.html", "{% block subject %}  {% endblock %}<p>Hi</p>")
    (issue,) = lint(workspace, "a")  # not base.html or part.html: they are not emails
    assert (issue.template, issue.code, issue.severity) == ("a.html", "no-subject", "error")
    assert "block subject" in (issue.hint or "")
    every = {(i.template, i.code) for i in lint(workspace)}
    assert every == {("a.html", "no-subject"), ("blank.html", "no-subject")}


def test_a_subject_from_the_layout_counts(workspace: Workspace, write_template: Write) -> None:
    write_template("base.html", "{% block subject %}News{% endblock %}{% block c %}{% endblock %}")
    write_template("a.html", '{% extends "base.html" %}{% block c %}<p>Hi</p>{% endblock %}')
    assert lint(workspace, "a") == []
    assert lint(workspace) == []


def test_lint_and_preview_agree_on_the_subject(
    workspace: Workspace, write_template: Write, cli: Callable[..., Any]
) -> None:
    write_template("nosubject.html", "<p>Hi {{ first_name | default('there') }}</p>")
    ws = str(workspace.path)
    workspace.close()
    lint_run = cli("-w", ws, "template", "lint", "nosubject")
    assert lint_run.returncode == 1 and "the template has no subject" in lint_run.stdout
    ingest = cli("-w", ws, "ingest", f"{ws}/data/crm_contacts.csv", "--mapping", "crm_contacts")
    assert ingest.returncode == 0, ingest.stderr
    person = "grace.hopper@example.com"
    preview = cli("-w", ws, "template", "preview", "nosubject", "--profile", person)
    assert preview.returncode == 1 and "no subject" in preview.stderr


def test_a_misspelt_template_name_gets_a_suggestion(workspace: Workspace) -> None:
    (issue,) = lint(workspace, "lifecyle")
    assert issue.code == "not-found" and issue.hint == "did you mean 'lifecycle.html'?"


def test_file_suggestions_compare_names_without_their_extension() -> None:
    from segmint.common import did_you_mean_file

    known = ["layout.html", "lifecycle.html", "emails/welcome.html"]
    assert did_you_mean_file("nosuch.html", known) is None
    assert did_you_mean_file("lifecyle.html", known) == "did you mean 'lifecycle.html'?"
    assert did_you_mean_file("emails/welcom.html", known) == "did you mean 'emails/welcome.html'?"
    assert did_you_mean_file("layout", known) == "did you mean 'layout.html'?"
