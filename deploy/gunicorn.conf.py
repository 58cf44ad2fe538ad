"""gunicorn settings for the Lingxi API (`make serve`, `make serve-prod`; `gunicorn -c deploy/gunicorn.conf.py`).

Command-line flags override these (the Makefile passes --bind, --workers and --threads).

- timeout: a worker silent this long is killed (counted from its first heartbeat, after the boot).
  The boot itself is bounded: the version loads in a background thread and the boot waits for it
  at most LINGXI_BOOT_WAIT_SECONDS (20 s), then the worker answers (503 "loading" until ready).
  No request should come near 60 s; one that does is a bug, not a load.
- graceful_timeout: on HUP / TERM, in-flight requests get this long to finish.
- worker_tmp_dir: the heartbeat file on tmpfs, so a busy disk cannot make a healthy worker look dead.
- sync workers read a request from the socket themselves: a client that sends its headers slowly
  holds a worker. In production put the buffering proxy in front (`make serve-prod`, nginx:
  deploy/nginx.conf.template), which hands gunicorn only complete requests.
"""
import os

bind = os.environ.get("LINGXI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WORKERS", "2"))
threads = int(os.environ.get("THREADS", "1"))
timeout = 60
graceful_timeout = 30
keepalive = 5                   # behind the proxy: reuse its upstream connections
backlog = 2048
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
preload_app = False             # each worker loads (and reloads) its own version
accesslog = None                # the app writes one JSON line per request
errorlog = "-"
