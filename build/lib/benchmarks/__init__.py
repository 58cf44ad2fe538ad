"""Tools outside the request path: the pipeline benchmark, the HTTP load test, the demo walkthrough.

``bench`` times the Makefile's steps and runs the load test (``make bench``); ``loadtest`` drives
gunicorn (``server``) with ``loadgen`` (wrk with ``openloop.lua``, or a Python open-loop client);
``engine_latency`` times the engine in-process; ``examples`` prints the demo's curl walkthrough.
"""
