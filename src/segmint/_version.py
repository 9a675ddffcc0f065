"""The installed version of segmint."""

__version__ = "0.1.0"
