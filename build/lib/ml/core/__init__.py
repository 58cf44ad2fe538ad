"""The ground floor every other package stands on, and which imports none of them.

Paths and the calendar of cut-offs (``config``), the product catalogue (``catalogue``), the
suitability rules that are law everywhere (``suitability``, ``suitability_rules``), the metric
functions (``metrics``), the feedback log's exchange format (``feedback_log``), the one writer of
JSON reports (``reports``) and the progress lines of batch jobs (``logs``).
"""
