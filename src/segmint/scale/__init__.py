"""Running segmint's definitions where the data already is: dbt projects and Spark.

- :mod:`segmint.scale.dbt`: ``segmint export dbt DIR`` writes a dbt project whose models
  compute the traits and memberships from an events table (the SQL of
  :mod:`segmint.membership.segsql`, unchanged).
- :mod:`segmint.scale.spark`: ``segmint refresh --engine spark`` runs the same SQL on Spark
  (the optional ``spark`` extra).

Both take their SQL from the traits and membership stages; nothing here compiles a rule.
"""

from __future__ import annotations
