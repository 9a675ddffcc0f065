"""The web console: server-rendered pages over the management API, with no logic of its own.

:mod:`segmint.web.routes` is included in every app (``segmint serve``, ``segmint ui``) under
``/ui``; :mod:`segmint.web.session` logs a browser in with an API key.
"""

from __future__ import annotations
