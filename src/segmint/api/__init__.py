"""The REST API: Segment-compatible tracking, auth and the app factory."""

from __future__ import annotations

from segmint.api.app import EXTRA_ROUTERS, create_app
from segmint.api.auth import require_read, require_write
from segmint.api.errors import ApiError

__all__ = ["EXTRA_ROUTERS", "ApiError", "create_app", "require_read", "require_write"]
