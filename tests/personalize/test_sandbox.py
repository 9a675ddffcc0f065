"""The sandbox holds: template-injection payloads fail with a clear error, limits hold."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from segmint.personalize import (
    Limits,
    RenderedEmail,
    TemplateError,
    TemplateLimitError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateUndefinedError,
)

Render = Callable[..., RenderedEmail]

# Well-known Jinja2 server-side template-injection payloads (PayloadsAllTheThings,
# HackTricks); each must fail for this recipient with a security or undefined error.
PAYLOADS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ (1).real.__class__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ lipsum.__globals__.__builtins__.__import__('os') }}",
    "{{ range.__class__ }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ config.__class__.__init__.__globals__['os'] }}",
    "{{ request }}",
    "{{ request.application.__globals__.__builtins__.__import__('os') }}",
    "{{ request|attr('application') }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ ()|attr('__class__')|attr('__base__') }}",
    "{{ ''['__class__'] }}",
    "{{ segments['__class__'] }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ '{a.__class__.__mro__}'.format_map({'a': ''}) }}",
    "{{ '%s'.__mod__.__self__ }}",
    "{{ dict.mro() }}",
    "{{ url_for.__globals__ }}",
    "{{ get_flashed_messages.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set x = ''.__class__ %}{{ x }}",
    "{{ loop.__class__ }}",
    "{{ first_name.__class__.__mro__ }}",
    "{{ (first_name|default('x')).__class__ }}",
    "{% macro m() %}{% endmacro %}{{ m.__globals__ }}",
    "{{ m.func_globals }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_payload_fails_clearly(quick_render: Render, payload: str) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        quick_render(payload, {"first_name": "Ada"})
    assert isinstance(caught.value, TemplateSecurityError | TemplateUndefinedError)
    message = str(caught.value)
    assert ".html" in message  # names the template
    assert "not allowed" in message or "unknown variable" in message or "unsafe" in message


def test_security_error_names_the_attribute(render: Render) -> None:
    with pytest.raises(TemplateSecurityError, match="'__class__'.*not allowed"):
        render("{{ ''.__class__ }}")


def test_unknown_variable_suggests_the_trait(render: Render) -> None:
    with pytest.raises(TemplateUndefinedError, match="unknown variable 'frist_name'.*first_name"):
        render("Hi {{ frist_name }}")


def test_missing_known_trait_renders_empty_and_default_applies(render: Render) -> None:
    email = render("<p>[{{ first_name }}] {{ first_name | default('there') }}</p>")
    assert "[] there" in email.html
    email = render("<p>{{ first_name | default('there') }}</p>", {"first_name": None})
    assert "there" in email.html
    email = render("<p>{{ first_name | default('there') }}</p>", {"first_name": ""})
    assert "there" in email.html


def test_is_defined_on_unknown_name_does_not_raise(render: Render) -> None:
    email = render("<p>{% if coupon is defined %}yes{% else %}no{% endif %}</p>")
    assert "no" in email.text


def test_immutable_sandbox_refuses_mutation(render: Render) -> None:
    with pytest.raises(TemplateSecurityError):
        render("{% set l = [1] %}{{ l.append(2) }}")


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'a' * 1000000000 }}",
        "{% set l = [0] * 100000000 %}",
        "{{ 9 ** 999999 }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:>{}}'.format(1, 999999999) }}",
        "{{ 'x'.center(999999999) }}",
        "{{ 'x'.ljust(999999999) }}",
        "{{ '%999999999d' | format(1) }}",
        "{{ '%*d' | format(999999999, 1) }}",
        "{{ 'x' | center(999999999) }}",
        "{{ 'x' | indent(999999999, true) }}",
        "{{ range(10) | slice(999999999) | list }}",
    ],
)
def test_memory_bombs_are_refused(quick_render: Render, body: str) -> None:
    with pytest.raises(TemplateLimitError):
        quick_render(body)


def test_big_numbers_are_fine_where_they_size_nothing(render: Render) -> None:
    body = (
        "<p>{{ '{:,}'.format(lifetime_value) }} {{ lifetime_value | money('EUR') }} "
        "{{ '%d' | format(lifetime_value) }} {{ (lifetime_value * 1000) | int }} "
        "{{ lifetime_value | round }}</p>"
    )
    email = render(body, {"lifetime_value": 123_456_789})
    assert email.text == "123,456,789 €123,456,789.00 123456789 123456789000 123456789\n"


def test_output_limit(render: Render) -> None:
    body = "{% for i in range(100000) %}0123456789{% endfor %}"
    with pytest.raises(TemplateLimitError, match="output larger"):
        render(body, limits=Limits(max_output_bytes=50_000))


def test_render_time_limit_without_output(render: Render) -> None:
    # Nested loops with no output, no calls: only the loop-iteration charge can stop them.
    body = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateLimitError, match="time limit"):
        render(body, limits=Limits(max_render_seconds=0.05))


def test_render_time_limit_in_recursive_macro(render: Render) -> None:
    body = (
        "{% macro spin(n) %}{% for i in range(100000) %}{% endfor %}"
        "{% if n %}{{ spin(n - 1) }}{% endif %}{% endmacro %}{{ spin(400) }}"
    )
    with pytest.raises(TemplateRenderError):
        render(body, limits=Limits(max_render_seconds=0.05))


def test_template_size_limit(render: Render) -> None:
    with pytest.raises(TemplateError, match="larger than"):
        render("<p>" + "x" * 5000 + "</p>", limits=Limits(max_template_bytes=4000))


def test_removed_globals(render: Render) -> None:
    for name in ("cycler", "joiner", "lipsum", "dict"):
        with pytest.raises(TemplateUndefinedError, match=f"unknown variable '{name}'"):
            render(f"{{{{ {name}() }}}}")
