"""Learning under extreme imbalance: candidate pipelines, the strategy review, any bank's table.

``pipelines`` builds each candidate as one imbalanced-learn pipeline (``preprocess`` ->
``samplers`` -> ``estimators``) with one imbalance lever each; ``strategy_review`` refits them on
the current version's training rows (``make strategies``); ``fit_table`` runs the same candidates
on any flat labelled table (``tabular``), e.g. UCI Bank Marketing, and ``fit_report`` writes its report.
"""
