"""Allow ``python -m segmint``."""

from __future__ import annotations

from segmint.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
