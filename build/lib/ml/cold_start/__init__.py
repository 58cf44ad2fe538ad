"""New products with no history: conflicts with the shelf, target customers, an uptake forecast.

``definition`` turns a product definition into a catalogue row, ``conflicts`` finds substitutes
and warnings, ``forecast`` projects uptake from similar products, ``analyser`` ranks target
customers with the propensity model through the product's attributes (``python -m ml.cold_start``);
``holdout`` retrains without a product, for the evaluation in ``ml.evaluation.cold_start``.
"""
