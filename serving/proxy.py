"""Production serving: gunicorn behind nginx, which buffers slow clients (``make serve-prod``).

    python -m serving.proxy [--listen 127.0.0.1:8000] [--upstream 127.0.0.1:8001]
                            [--workers 2] [--threads 1] [--run-dir DIR]

Renders ``deploy/nginx.conf.template`` into the run directory, starts gunicorn on the loopback
upstream (``serving/gunicorn.conf.py``) and nginx in the foreground on ``--listen``, and supervises
both: SIGTERM / SIGINT stop both; if either exits, the other is stopped and the exit code is
non-zero. SIGHUP is passed to gunicorn (graceful restart of the workers). nginx comes from Debian
(``apt-get install nginx``; ``make nginx`` installs it when missing).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ml.core.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
TEMPLATE = DEPLOY / "nginx.conf.template"
GUNICORN_CONF = Path(__file__).with_name("gunicorn.conf.py")
GUNICORN = Path(sys.executable).with_name("gunicorn")


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def render(listen: str, upstream: str, run_dir: Path, max_body: int, temp_dir: Path | None = None) -> str:
    """The nginx configuration for these addresses (the template's ``@NAME@`` placeholders)."""
    values = {
        "LISTEN": listen,
        "UPSTREAM": upstream,
        "RUN_DIR": str(run_dir),
        "TEMP_DIR": str(temp_dir or run_dir / "temp"),
        "MAX_BODY": str(max_body),
        # as root, nginx drops its workers to an unprivileged user (Debian's www-data)
        "USER_LINE": "user www-data;" if os.geteuid() == 0 else "# (not root: workers keep this user)",
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def temp_dir_for_workers(run_dir: Path) -> Path:
    """Where nginx's workers spool large bodies and responses. As root the workers run as www-data,
    which may not reach ``run_dir`` (e.g. inside a private 0700 temporary directory): they get a
    directory of their own under the system's temporary folder instead."""
    if os.geteuid() != 0:
        return run_dir / "temp"
    import pwd

    folder = Path(tempfile.mkdtemp(prefix="lingxi-nginx-"))
    folder.chmod(0o700)
    worker = pwd.getpwnam("www-data")
    os.chown(folder, worker.pw_uid, worker.pw_gid)
    return folder


def write_config(run_dir: Path, listen: str, upstream: str, max_body: int) -> tuple[Path, Path]:
    """(the configuration file, the workers' temporary folder)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o755)
    path, temp = run_dir / "nginx.conf", temp_dir_for_workers(run_dir)
    path.write_text(render(listen, upstream, run_dir, max_body, temp), encoding="utf-8")
    return path, temp


def commands(args: argparse.Namespace, run_dir: Path, nginx: str) -> tuple[list[str], list[str]]:
    gunicorn = [str(GUNICORN), "-c", str(GUNICORN_CONF), "--bind", args.upstream, "--workers", str(args.workers),
                "--threads", str(args.threads), "serving:create_app()"]
    proxy = [nginx, "-p", str(run_dir), "-e", str(run_dir / "nginx-error.log"), "-c", str(run_dir / "nginx.conf"),
             "-g", "daemon off;"]
    return gunicorn, proxy


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 35.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def serve(args: argparse.Namespace) -> int:
    nginx = nginx_binary()
    if nginx is None:
        print("error: nginx is not installed (`make nginx`, or apt-get install nginx)", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="lingxi-proxy-")).resolve()
    max_body = int(os.environ.get("LINGXI_MAX_BODY_BYTES", 64 * 1024))
    _, temp = write_config(run_dir, args.listen, args.upstream, max_body)
    gunicorn_cmd, nginx_cmd = commands(args, run_dir, nginx)
    test = subprocess.run([*nginx_cmd[:-2], "-t", "-q"], capture_output=True, text=True)
    if test.returncode != 0:
        print(f"error: nginx rejects {run_dir / 'nginx.conf'}:\n{test.stderr}", file=sys.stderr)
        return 2
    app = subprocess.Popen(gunicorn_cmd, cwd=PROJECT_ROOT)
    proxy = subprocess.Popen(nginx_cmd)
    stopping = []

    def on_signal(signum: int, _frame) -> None:
        if signum == signal.SIGHUP:
            app.send_signal(signal.SIGHUP)
        else:
            stopping.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    print(f"lingxi: nginx on {args.listen} -> gunicorn on {args.upstream} (run dir {run_dir})", file=sys.stderr)
    while not stopping and app.poll() is None and proxy.poll() is None:
        time.sleep(0.2)
    _stop(proxy, signal.SIGQUIT)  # nginx: graceful shutdown
    _stop(app)
    if temp.parent != run_dir:
        shutil.rmtree(temp, ignore_errors=True)
    return 0 if stopping else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.proxy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:8000", help="where nginx listens (host:port)")
    parser.add_argument("--upstream", default="127.0.0.1:8001", help="where gunicorn listens (loopback host:port)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 2)),
                        help="gunicorn workers (default $WORKERS or 2)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", 1)),
                        help="threads per gunicorn worker (default $THREADS or 1: sync workers)")
    parser.add_argument("--run-dir", default=None, help="nginx config, pid, temp files and logs (default: a temp dir)")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
