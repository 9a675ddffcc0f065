"""Machine learning on the store: CLV, propensity and clustering; scores enter as traits.

``segmint.models.service`` trains and scores (``train``, ``score``, ``compute_scores``);
``segmint.models.registry`` keeps every trained version; scores are written as events
(``segmint.models.scores``) that the models' traits fold like any other trait.
Heavy libraries (numpy, scipy, scikit-learn: the ``ml`` extra) are imported inside functions.
"""

from __future__ import annotations
