"""The ``segmint`` command."""
