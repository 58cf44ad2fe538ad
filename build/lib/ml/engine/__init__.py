"""The per-request engine the API calls: stage one, stage two and cold start for one customer.

``engine`` assembles recommendation and cold start over Feast online reads and the nightly
stage-one table; ``loading.load_engine`` builds it from a data directory (``LINGXI_ENGINE``).
"""
