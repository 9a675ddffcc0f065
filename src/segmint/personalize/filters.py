"""Template filters: fallbacks, money, dates in the profile's time zone, plurals.

All output is deterministic: month names and number formats come from small tables here,
never from the process locale.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Undefined

from segmint.clock import parse_instant
from segmint.personalize.errors import TemplateRenderError
from segmint.personalize.sandbox import BUDGET

_MINOR_UNITS = {"BHD": 3, "CLP": 0, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3}
_MINOR_UNITS |= {"OMR": 3, "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0}
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹", "CNY": "¥"}
_SYMBOLS |= {"KRW": "₩", "BRL": "R$", "CAD": "CA$", "AUD": "A$", "CHF": "CHF", "PLN": "zł"}
_SYMBOLS |= {"SEK": "kr", "NOK": "kr", "DKK": "kr"}
# locale → (group separator, decimal separator, pattern); {n} the number, {s} the symbol.
_NBSP, _NNBSP = "\u00a0", "\u202f"
_LOCALES = {
    "en": (",", ".", "{s}{n}"),
    "de": (".", ",", "{n}" + _NBSP + "{s}"),
    "fr": (_NNBSP, ",", "{n}" + _NBSP + "{s}"),
    "es": (".", ",", "{n}" + _NBSP + "{s}"),
    "it": (".", ",", "{n}" + _NBSP + "{s}"),
    "nl": (".", ",", "{s}" + _NBSP + "{n}"),
}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _missing(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def default(value: Any, fallback: Any = "", boolean: bool = False) -> Any:
    """Return ``fallback`` when ``value`` is missing, None or empty (or falsy if ``boolean``).

    Replaces Jinja's ``default`` so ``{{ first_name | default("there") }}`` also covers a
    trait that is present but null or blank.
    """
    if _missing(value) or value == "" or (boolean and not value):
        return fallback
    return value


def money(value: Any, currency: str = "EUR", locale: str = "en", symbol: bool = True) -> str:
    """Format an amount of money, e.g. ``€1,234.50`` for 1234.5 in EUR.

    Args:
        value: A number (or numeric string); missing renders empty.
        currency: ISO 4217 code; sets the number of decimals (JPY 0, KWD 3, else 2).
        locale: ``en``, ``de``, ``fr``, ``es``, ``it`` or ``nl`` separators and placement.
        symbol: Write the currency symbol (or the code when no symbol is known).
    """
    if _missing(value):
        return ""
    code = str(currency).upper()
    if locale not in _LOCALES:
        raise TemplateRenderError(f"money: unknown locale {locale!r}; use one of {list(_LOCALES)}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise TemplateRenderError(f"money: {value!r} is not a number") from None
    if not amount.is_finite():
        raise TemplateRenderError(f"money: {value!r} is not a finite number")
    places = _MINOR_UNITS.get(code, 2)
    amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    group, point, pattern = _LOCALES[locale]
    whole, _, frac = f"{abs(amount):,.{places}f}".partition(".")
    number = whole.replace(",", group) + (point + frac if frac else "")
    sign = "-" if amount < 0 else ""
    if not symbol:
        return sign + number
    mark = _SYMBOLS.get(code, code)
    text = pattern.format(s=mark, n=number)
    return sign + text if locale == "en" else _signed(text, sign)


def _signed(text: str, sign: str) -> str:
    if not sign:
        return text
    for i, ch in enumerate(text):
        if ch.isdigit():
            return text[:i] + sign + text[i:]
    return sign + text


@lru_cache(maxsize=512)
def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """Return the time zone ``name``, or ``fallback`` when it is missing or unknown."""
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


_NAMED_FORMATS: dict[str, Callable[[datetime], str]] = {
    "short": lambda d: d.strftime("%Y-%m-%d"),
    "medium": lambda d: f"{d.day} {_MONTHS[d.month - 1][:3]} {d.year}",
    "long": lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}",
    "full": lambda d: f"{_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year}",
    "time": lambda d: d.strftime("%H:%M"),
    "datetime": lambda d: f"{d.day} {_MONTHS[d.month - 1][:3]} {d.year}, {d:%H:%M}",
}


def format_date(value: Any, fmt: str = "medium", tz: str | None = None) -> str:
    """Format an instant in the profile's time zone: ``{{ last_purchase_at | date('long') }}``.

    Args:
        value: An aware datetime (naive is taken as UTC), a date, or an ISO 8601 string.
        fmt: ``short`` (2026-11-28), ``medium`` (28 Nov 2026), ``long`` (28 November 2026),
            ``full`` (Saturday, 28 November 2026), ``time`` (14:05), ``datetime``
            (28 Nov 2026, 14:05), or a ``strftime`` pattern.
        tz: A time zone name overriding the profile's.
    """
    if _missing(value) or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = parse_instant(value)
        except ValueError:
            raise TemplateRenderError(f"date: {value!r} is not an ISO 8601 date") from None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        budget = BUDGET.get()
        target = zone(tz) if tz else (budget.tz if budget else zone(None))
        value = aware.astimezone(target)
    elif isinstance(value, date):
        value = datetime(value.year, value.month, value.day)
    else:
        raise TemplateRenderError(f"date: cannot format a {type(value).__name__}")
    named = _NAMED_FORMATS.get(fmt)
    return named(value) if named else value.strftime(fmt)


def pluralize(count: Any, singular: str = "", plural: str | None = None) -> str:
    """Choose the singular or plural word for ``count``.

    ``{{ n | pluralize }}`` gives ``""``/``"s"``; ``pluralize("es")`` gives ``""``/``"es"``;
    ``pluralize("y,ies")`` or ``pluralize("time", "times")`` give the word itself.
    """
    if plural is None:
        if "," in singular:
            singular, plural = singular.split(",", 1)
        else:
            singular, plural = "", singular or "s"
    try:
        one = not _missing(count) and Decimal(str(count)) == 1
    except InvalidOperation:
        one = False
    return singular if one else plural


FILTERS: dict[str, Callable[..., Any]] = {
    "default": default,
    "d": default,
    "money": money,
    "date": format_date,
    "pluralize": pluralize,
}
