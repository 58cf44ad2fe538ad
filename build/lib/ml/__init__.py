"""Lingxi's machine-learning package: synthetic bank, training, ranking, relations, cold start."""
