"""Open-loop HTTP load on loopback, with latency measured from each request's scheduled time.

A closed-loop client (send, wait for the answer, send the next) slows down with the server, so the
queueing a slow server causes never shows in its latencies ("coordinated omission"). Here the
requests follow a fixed schedule instead: request ``n`` is due at ``start + n / rate``, whatever
happened to the earlier ones, and its latency runs from that due time to the last byte of the
answer. A request the client could not send on time (every connection busy) is sent late and its
lateness counts in its latency; a request never sent, never answered or answered with an
unexpected status is an error.

Two generators produce the same records (one per scheduled request: due, sent, received, status):

- ``wrk`` (C, epoll; ``/usr/bin/wrk``) with ``serving/openloop.lua``: the schedule lives in Lua
  (wrk's ``delay()`` hook), answers are matched to their slot through the ``X-Request-Id`` header
  the API echoes. 0.1-0.2 ms of CPU per request (``generator_cpu_*``).
- an asyncio client over raw sockets (a new connection per request), used when wrk is not
  installed. Several times wrk's CPU per request, taken from the server on a small machine.

The generator runs on the same machine as the server, so its CPU is reported with the results.
"""
from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LUA_SCRIPT = Path(__file__).with_name("openloop.lua")

GRACE_SECONDS = 3.0      # after the last slot: time for late answers before the run ends

START_DELAY_SECONDS = 0.5


@dataclass(frozen=True)
class Request:
    """One kind of request the schedule may pick (at random): a POST of ``body`` to ``path``."""

    path: str
    body: str


@dataclass
class LoadResult:
    """Per scheduled request (index = slot): due / sent / received times (s, monotonic; NaN when it
    did not happen), the HTTP status (0: no answer) and which ``Request`` it was (-1: not sent)."""

    rate: float
    seconds: float
    due: np.ndarray
    sent: np.ndarray
    received: np.ndarray
    status: np.ndarray
    kind: np.ndarray
    generator: str
    generator_cpu_s: float
    slot_ids: list[str] = field(default_factory=list)  # "<thread>-<slot>" per index (idempotency keys)

    @property
    def latency_ms(self) -> np.ndarray:
        """From the due time (or the send time, if the timer fired early) to the answer."""
        start = np.fmin(self.due, self.sent)
        return (self.received - start) * 1000

    def ok(self, expected: tuple[int, ...]) -> np.ndarray:
        return np.isin(self.status, expected)

    def summary(self, expected: tuple[int, ...]) -> dict:
        ok = self.ok(expected)
        answered = ~np.isnan(self.received)
        latency = self.latency_ms[ok]
        lag = (self.sent - self.due)[~np.isnan(self.sent)] * 1000
        span = (np.nanmax(self.received) - self.due.min()) if answered.any() else float("nan")
        out = {
            "target_rps": self.rate,
            "rps": round(float(ok.sum() / span), 1) if answered.any() and span > 0 else 0.0,
            "requests": int(len(self.due)),
            "ok": int(ok.sum()),
            "errors": int(len(self.due) - ok.sum()),
            "not_sent": int(np.isnan(self.sent).sum()),
            "not_answered": int((~np.isnan(self.sent) & ~answered).sum()),
            "statuses": {str(k): v for k, v in sorted(Counter(self.status[answered].tolist()).items())},
            "duration_s": self.seconds,
            **percentiles(latency),
            "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 2) if len(lag) else None,
            "generator": self.generator,
            "generator_cpu_ms_per_request": round(1000 * self.generator_cpu_s / max(len(self.due), 1), 3),
        }
        return out


def percentiles(latency_ms: np.ndarray) -> dict:
    if len(latency_ms) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
            "max_ms": round(float(latency_ms.max()), 2)}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run(base_url: str, token: str, requests: list[Request], rate: float, seconds: float, *,
        idempotency_prefix: str | None = None, connections: int = 128, threads: int = 1,
        generator: str = "auto", stop: threading.Event | None = None) -> LoadResult:
    """Send ``rate`` requests per second for ``seconds`` (POST, bearer ``token``), each a random pick
    of ``requests``. With ``idempotency_prefix``, the request of slot id ``s`` carries the key
    ``<prefix>-<s>``. Setting ``stop`` ends the run early (what is not sent yet is not sent)."""
    if not requests:
        raise ValueError("no requests to send")
    if any("\t" in r.path or "\n" in r.path + r.body for r in requests):
        raise ValueError("paths and bodies must be one line without tabs")
    chosen = generator if generator != "auto" else ("wrk" if wrk_path() else "asyncio")
    stop = stop or threading.Event()
    # at most ~one connection per request per second: an idle keep-alive connection must not
    # outlive the server's keep-alive timeout (gunicorn: 2 s), or wrk's reconnects get out of
    # step with its delay() timers and requests go out late or not at all
    connections = max(1, min(connections, int(np.ceil(rate))))
    if chosen == "wrk":
        return _run_wrk(base_url, token, requests, rate, seconds, idempotency_prefix, connections, threads, stop)
    if chosen == "asyncio":
        return asyncio.run(_run_asyncio(base_url, token, requests, rate, seconds, idempotency_prefix, connections,
                                        stop))
    raise ValueError(f"unknown generator {generator!r}")


# -- wrk --------------------------------------------------------------------------------------------
def _run_wrk(base_url: str, token: str, requests: list[Request], rate: float, seconds: float,
             idempotency_prefix: str | None, connections: int, threads: int, stop: threading.Event) -> LoadResult:
    wrk = wrk_path()
    if wrk is None:
        raise FileNotFoundError("wrk is not installed")
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="lingxi-load-") as tmp:
        requests_file = Path(tmp) / "requests.tsv"
        requests_file.write_text("".join(f"{r.path}\t{r.body}\n" for r in requests))
        out_prefix = Path(tmp) / "slots"
        start_us = int((time.monotonic() + START_DELAY_SECONDS) * 1e6)
        args = [str(start_us), str(rate), str(seconds), str(threads), str(requests_file), str(out_prefix), token]
        if idempotency_prefix:
            args.append(idempotency_prefix)
        duration = int(np.ceil(START_DELAY_SECONDS + seconds + GRACE_SECONDS))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        log = Path(tmp) / "wrk.out"
        with open(log, "w") as handle:
            proc = subprocess.Popen([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
                                     "--timeout", f"{int(GRACE_SECONDS + 2)}s", "-s", str(LUA_SCRIPT), base_url,
                                     "--", *args], stdout=handle, stderr=subprocess.STDOUT)
            done = [Path(f"{out_prefix}.done.{tid}") for tid in range(threads)]
            while proc.poll() is None:
                if stop.wait(0.05) or all(path.exists() for path in done):
                    proc.send_signal(signal.SIGINT)  # wrk stops its threads and exits normally (files flushed)
                    proc.wait(30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {log.read_text()[-2000:]}")
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        slots = int(rate * seconds / threads)
        result = _empty(rate, seconds, slots, threads, start_us / 1e6, "wrk", cpu)
        for tid in range(threads):
            path = Path(f"{out_prefix}.{tid}")
            if path.exists():
                _read_wrk_records(path, tid, slots, threads, result)
    return result


def _read_wrk_records(path: Path, tid: int, slots: int, threads: int, result: LoadResult) -> None:
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[1].isdigit() or int(parts[1]) >= slots:
            continue  # an unmatched answer ("?"), or a truncated last line
        i = int(parts[1]) * threads + tid
        if parts[0] == "S" and len(parts) == 5:
            result.sent[i] = int(parts[3]) / 1e6
            result.kind[i] = int(parts[4])
        elif parts[0] == "R" and np.isnan(result.received[i]):
            result.received[i] = int(parts[2]) / 1e6
            result.status[i] = int(parts[3])


def _empty(rate: float, seconds: float, slots: int, threads: int, start: float, generator: str,
           cpu: float) -> LoadResult:
    """A result with one row per slot in due order (slot ``s`` of thread ``t`` is index s*T+t)."""
    total = slots * threads
    index = np.arange(total)
    due = start + (index // threads + (index % threads) / threads) * threads / rate
    nan = np.full(total, np.nan)
    return LoadResult(rate, seconds, due, nan.copy(), nan.copy(), np.zeros(total, dtype=int),
                      np.full(total, -1), generator, cpu,
                      [f"{i % threads}-{i // threads}" for i in index])


# -- asyncio fallback --------------------------------------------------------------------------------
async def _run_asyncio(base_url: str, token: str, requests: list[Request], rate: float, seconds: float,
                       idempotency_prefix: str | None, max_in_flight: int, stop: threading.Event) -> LoadResult:
    host, port = _host_port(base_url)
    total = int(rate * seconds)
    cpu0 = time.process_time()
    start = time.monotonic() + START_DELAY_SECONDS
    result = _empty(rate, seconds, total, 1, start, "asyncio", 0.0)
    rng = np.random.default_rng(1000)
    picks = rng.integers(0, len(requests), size=total)
    in_flight = asyncio.Semaphore(max_in_flight * 4)  # a bound on sockets, far above the schedule's needs
    tasks = []

    async def one(i: int) -> None:
        async with in_flight:
            request = requests[picks[i]]
            headers = {"Host": f"{host}:{port}", "Authorization": f"Bearer {token}",
                       "Content-Type": "application/json", "X-Request-Id": f"0-{i}", "Connection": "close",
                       "Content-Length": str(len(request.body.encode()))}
            if idempotency_prefix:
                headers["Idempotency-Key"] = f"{idempotency_prefix}-0-{i}"
            head = f"POST {request.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            result.sent[i], result.kind[i] = time.monotonic(), picks[i]
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write((head + "\r\n").encode() + request.body.encode())
                await writer.drain()
                status_line = await asyncio.wait_for(reader.readline(), GRACE_SECONDS + 2)
                await asyncio.wait_for(reader.read(), GRACE_SECONDS + 2)  # to EOF: Connection: close
                writer.close()
                result.received[i] = time.monotonic()
                result.status[i] = int(status_line.split()[1])
            except (OSError, asyncio.TimeoutError, IndexError, ValueError):
                pass  # no answer: an error in the summary

    for i in range(total):
        if stop.is_set():
            break
        delay = result.due[i] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    deadline = start + seconds + GRACE_SECONDS
    if tasks:
        await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.1))
    for task in tasks:
        task.cancel()
    result.generator_cpu_s = time.process_time() - cpu0
    return result


def _host_port(base_url: str) -> tuple[str, int]:
    rest = base_url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.partition(":")
    return host, int(port or 80)


def cpu_seconds_of_group(pgid: int) -> float:
    """User + system CPU seconds of the live processes in a process group (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is field 5 of the full line
            total += int(fields[11]) + int(fields[12])
    return total / tick


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot, from ``/proc/stat``."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")  # guest time is inside user
