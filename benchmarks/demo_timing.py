"""Time ``make demo`` as a new user meets it: from a clean data dir to an API that is ready.

    python -m benchmarks.demo_timing [--scale demo] [--seed 7] [--install]

1. ``make demo`` with a new, empty ``LINGXI_DATA_DIR`` (a temporary folder) and a free port: wall
   time until ``/readyz`` answers 200 with a learned stage two, each step's time (from the
   ``[n/N] step`` lines the demo prints), and the CPU time of every process it ran.
2. ``make demo`` again over the same data dir: the time until ready, and which steps ran (none,
   when what the first run built is current).
3. With ``--install``: a new virtualenv in a temporary folder, the pinned dependencies and the
   project installed into it (a wheel build, as ``make install`` but not editable), timed too; pip
   uses whatever index and cache the machine has, which ``install.pip_index`` names.

The machine's cores and load average (before and after) go with the figures: on a shared machine
wall time depends on what else runs, CPU time much less. Writes ``demo`` into reports/bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from ml.core.config import PROJECT_ROOT, Paths
from ml.core.logs import step_log
from ml.core.reports import write_bench

log = step_log("bench")
STEP_LINE = re.compile(r"^\[(\d+)/(\d+)\] ([a-z-]+): ")
FALLBACK_STAGE_TWO = re.compile(r"^rule-")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WALKTHROUGH_FIRST_LINE = "#!/usr/bin/env bash"  # benchmarks.examples prints it once the data is built


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_of(pid: int, children: bool) -> float:
    """User + system seconds of a process (with ``children``: of its reaped children too)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / CLOCK_TICKS


def session_cpu(leader: int) -> float:
    """CPU seconds of the session ``leader`` started: the leader with every child it has reaped, plus
    every process still alive in the session (the server, which is never reaped while it runs)."""
    total = _cpu_of(leader, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        try:
            if os.getsid(int(entry.name)) == leader:
                total += _cpu_of(int(entry.name), children=True)
        except OSError:
            continue
    return total


def ready(base: str) -> str | None:
    """The learned stage two's version when the API is ready with one, else None."""
    try:
        response = requests.get(f"{base}/readyz", timeout=2)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    stage_two = response.json().get("checks", {}).get("engine", {}).get("versions", {}).get("stage_two", "")
    return stage_two if stage_two and not FALLBACK_STAGE_TWO.match(stage_two) else None


def run_demo(env: dict[str, str], port: int, scale: str, seed: int, timeout: float, transcript: Path) -> dict:
    """One ``make demo``: seconds until ready, each step's seconds, CPU seconds; the server is stopped."""
    command = ["make", "--no-print-directory", "demo", f"SCALE={scale}", f"SEED={seed}", f"PORT={port}"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    marks: list[tuple[str, float]] = []

    def read() -> None:
        with open(transcript, "ab") as out:
            for raw in process.stdout:
                out.write(raw)
                out.flush()  # the transcript can be followed while the demo runs
                line = raw.decode(errors="replace")
                match = STEP_LINE.match(line)
                if match:
                    marks.append((match[3], time.perf_counter() - started))
                elif line.startswith(WALKTHROUGH_FIRST_LINE):  # built: the walkthrough, then the server
                    marks.append(("serve", time.perf_counter() - started))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    base, stage_two = f"http://127.0.0.1:{port}", None
    try:
        while stage_two is None:
            if process.poll() is not None:
                raise SystemExit(f"make demo exited ({process.returncode}) before the API was ready: see {transcript}")
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"make demo not ready after {timeout:.0f} s: see {transcript}")
            stage_two = ready(base)
            if stage_two is None:
                time.sleep(0.5)
        seconds = time.perf_counter() - started
        cpu = session_cpu(process.pid)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        reader.join(10)
    bounds = [*marks, ("ready", seconds)]
    steps = {name: round(end - at, 1) for (name, at), (_, end) in zip(bounds, bounds[1:])}
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "steps": steps, "stage_two": stage_two}


def time_install(work: Path) -> dict:
    """A new virtualenv with the pinned set and the project (a wheel), timed; it is removed after."""
    venv = work / "venv"
    py = venv / "bin" / "python"
    commands = [[sys.executable, "-m", "venv", str(venv)],
                [str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip>=24"],
                [str(py), "-m", "pip", "install", "--quiet", "-r", str(PROJECT_ROOT / "requirements.lock")],
                [str(py), "-m", "pip", "install", "--quiet", "--no-deps", str(PROJECT_ROOT)]]
    started, cpu = time.perf_counter(), 0.0
    for command in commands:
        process = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"install failed: {' '.join(command)}: {process.stderr.read().decode()[-2000:]}")
        cpu += usage.ru_utime + usage.ru_stime
    index = subprocess.run([str(py), "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    shutil.rmtree(venv, ignore_errors=True)
    return {"seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(cpu, 1),
            "pip_index": "machine's pip configuration: " + (", ".join(index.split()) or "PyPI")}


def bench_demo(scale: str, seed: int, install: bool, timeout: float, reports: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lingxi-demo-"))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("LINGXI_", "MAKE", "MFLAGS")) and name not in ("PROMETHEUS_MULTIPROC_DIR",)}
    env.update({"LINGXI_DATA_DIR": str(work / "data"), "LINGXI_REPORTS_DIR": str(work / "reports")})
    transcript = reports / "demo_transcript.txt"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    transcript.write_text("")
    load_before = os.getloadavg()
    try:
        result: dict[str, Any] = {"scale": scale, "seed": seed, "machine_cores": os.cpu_count()}
        if install:
            result["install"] = time_install(work)
            log(f"install: {result['install']['seconds']} s")
        first = run_demo(env, free_port(), scale, seed, timeout, transcript)
        log(f"make demo from a clean data dir: ready in {first['seconds']} s ({first['cpu_seconds']} s CPU)")
        second = run_demo(env, free_port(), scale, seed, timeout, transcript)
        log(f"make demo again: ready in {second['seconds']} s")
        result.update({**first, "second_run": {"seconds": second["seconds"], "cpu_seconds": second["cpu_seconds"],
                                                "steps_run": [s for s in second["steps"] if s != "serve"]}})
        if install:
            result["seconds_with_install"] = round(first["seconds"] + result["install"]["seconds"], 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average_1min"] = {"before": round(load_before[0], 1), "after": round(os.getloadavg()[0], 1)}
    result["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return result


# The README's line on the demo's time, between these markers, comes only from the record below.
README_START = "<!-- demo-time: rendered by `make bench-demo` from docs/demo_timing.json -->"
README_END = "<!-- /demo-time -->"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def render_line(record: dict) -> str:
    """The README's sentence on the demo's time, from a recorded ``demo`` section."""
    load = record["load_average_1min"]
    text = (f"Measured (`make bench-demo`, {record['measured_at'][:10]}, {record['machine_cores']} cores shared with "
            f"other jobs: load average {load['before']:.1f} before, {load['after']:.1f} after): the first "
            f"`make demo` ({record['scale']} scale, dependencies already installed) was ready in "
            f"{_duration(record['seconds'])} ({record['cpu_seconds']:.0f} s of CPU)")
    if "install" in record:
        text = text.replace(", dependencies already installed", "") + (
            f", after {_duration(record['install']['seconds'])} of installing")
    return text + f"; the second in {_duration(record['second_run']['seconds'])}."


def render_readme(readme: str, record: dict) -> str:
    """``readme`` with the text between the markers replaced by ``render_line(record)``."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return readme[:start] + "\n" + render_line(record) + "\n" + readme[end:]


def record(bench: Path, out: Path, readme: Path) -> dict:
    """Copy the ``demo`` section of ``bench`` (reports/bench.json) to ``out`` (committed) and render the README."""
    demo = json.loads(bench.read_text())["demo"]
    out.write_text(json.dumps(demo, indent=2) + "\n")
    readme.write_text(render_readme(readme.read_text(), demo))
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_timing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="demo", help="the demo's SCALE (test, demo, full or a number)")
    parser.add_argument("--seed", type=int, default=7, help="the demo's SEED")
    parser.add_argument("--install", action="store_true",
                        help="also time a new virtualenv with the pinned dependencies (as on a fresh machine)")
    parser.add_argument("--timeout", type=float, default=3600, help="give up when a run is not ready after this")
    parser.add_argument("--record", type=Path, default=None, metavar="JSON",
                        help="no run: copy the demo section of reports/bench.json to JSON and render README.md from it")
    args = parser.parse_args(argv)
    reports = Paths.from_env().reports
    if args.record:
        print(json.dumps(record(reports / "bench.json", args.record, PROJECT_ROOT / "README.md"), indent=2))
        return 0
    result = bench_demo(args.scale, args.seed, args.install, args.timeout, reports)
    write_bench(reports, {"demo": result})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
