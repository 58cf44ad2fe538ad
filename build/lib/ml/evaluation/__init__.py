"""Judging the system on data it never saw; the only package besides tests that may read the oracle.

``evaluate`` scores the held-out cut-off (with ``report``), ``replay`` replays two-stage sessions on
an unseen bank (tables in ``replay_report``), ``simulated_logs`` writes the development bank's
simulated feedback sessions, ``cold_start`` holds products out and ranks their real adopters.
"""
