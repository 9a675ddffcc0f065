"""Errors found in a workspace's configuration.

::

    SegmintError
    └── ConfigError            one problem, with file:line:column and key path
        ├── ConfigErrors       several problems found in one pass (all are reported)
        └── StaleDefinitionError  the file changed since the version an editor read
"""

from __future__ import annotations

from collections.abc import Sequence

from segmint.errors import SegmintError, SourceLocation, caret_excerpt


class ConfigError(SegmintError, ValueError):
    """A problem in ``segmint.yaml`` or another workspace file.

    Attributes:
        message: What is wrong, without the location.
        location: Where it is, when known.
        key_path: The dotted key path, e.g. ``segments.vip.rule``.
        hint: A suggestion such as "did you mean 'avg_order_value'?".
    """

    def __init__(
        self,
        message: str,
        *,
        location: SourceLocation | None = None,
        key_path: str | None = None,
        hint: str | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.location = location
        self.key_path = key_path
        self.hint = hint
        self.source = source
        super().__init__(self._headline())

    def _headline(self) -> str:
        where = f"{self.location}: " if self.location else ""
        path = f" (at {self.key_path})" if self.key_path else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}{self.message}{path}{hint}"

    def detailed_message(self) -> str:
        """Return the headline plus the offending source line with a caret."""
        if self.location is None or self.source is None:
            return str(self)
        excerpt = caret_excerpt(self.source, self.location, self.hint)
        where = f"{self.location}: "
        path = f" (at {self.key_path})" if self.key_path else ""
        return f"{where}{self.message}{path}\n{excerpt}"


class ConfigErrors(ConfigError):
    """Every problem found while loading a workspace, reported together."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(
            first.message,
            location=first.location,
            key_path=first.key_path,
            hint=first.hint,
            source=first.source,
        )
        if len(self.errors) > 1:
            self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)

    def detailed_message(self) -> str:
        """Return every error's detailed message, one after the other."""
        return "\n".join(e.detailed_message() for e in self.errors)


class StaleDefinitionError(ConfigError):
    """A save refused because ``segmint.yaml`` changed since the version the editor read."""
