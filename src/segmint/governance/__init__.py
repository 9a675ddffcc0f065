"""Segments governed like code: fixtures run on both paths, lint, and deploy-time diffs.

- :mod:`segmint.governance.fixtures` / :mod:`segmint.governance.runner`: ``segmint test``;
- :mod:`segmint.governance.lint`: ``segmint segments lint``;
- :mod:`segmint.governance.diff`: ``segmint segments diff``.
"""
