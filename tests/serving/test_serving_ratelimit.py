"""Per-token rate limits: 429 with Retry-After and the JSON error body past a token's rate, in one
process and under gunicorn with two workers (each worker holds rate / workers)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from serving_fakes import make_customer_360
from serving_live import GUNICORN, free_port, kill9, start, wait_ready

from serving import create_app
from serving.auth import Principal
from serving.ratelimit import RateLimiter, parse_limits
from serving.tokens import add_token

V1 = "/api/v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_bursts_refills_and_names_the_wait():
    clock = FakeClock()
    limiter = RateLimiter({"manager": 4}, burst_seconds=1, workers=2, clock=clock)  # per worker: 2/s, burst 2
    assert [limiter.retry_after("t", 4) for _ in range(2)] == [None, None]
    assert limiter.retry_after("t", 4) == pytest.approx(0.5)
    assert limiter.retry_after("other", 4) is None  # buckets are per token
    clock.now += 0.5
    assert limiter.retry_after("t", 4) is None
    assert limiter.retry_after("t", 0) is None      # 0: unlimited
    manager = Principal("aaaaaaaaaaaa", "m", "manager", "M1")
    assert limiter.rate_for(manager) == 4 and limiter.rate_for(Principal("b" * 12, "c", "crm", None)) == 0
    assert limiter.rate_for(Principal("c" * 12, "m", "manager", "M1", rate_limit=0.5)) == 0.5


def test_parse_limits():
    assert parse_limits("crm=300, manager=10,admin=2.5") == {"crm": 300, "manager": 10, "admin": 2.5}
    assert parse_limits("off") == {} and parse_limits("") == {}
    for bad in ("crm", "crm=fast", "=3", "crm=-1"):
        with pytest.raises(ValueError):
            parse_limits(bad)


def test_429_with_retry_after_past_the_rate(app_config, auth, tokens, data_dir):
    config = {**app_config, "LINGXI_RATE_LIMITS": "manager=2,admin=100", "LINGXI_RATE_BURST_SECONDS": 1}
    client = create_app(config).test_client()
    statuses = [client.get(f"{V1}/products", headers=auth("manager")) for _ in range(4)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    limited = statuses[2]
    assert limited.status_code == 429 and limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get(f"{V1}/products", headers=auth("manager2")).status_code == 200  # another token, own bucket
    assert client.get(f"{V1}/products", headers=auth("admin")).status_code == 200
    assert client.get("/healthz").status_code == 200                                 # no token, no bucket
    # a token's own limit wins over its role's
    fast = add_token(data_dir / "tokens.json", "fast-manager", "manager", "M001", rate_limit=0)
    slow = add_token(data_dir / "tokens.json", "slow-crm", "crm", rate_limit=1)
    client = create_app(config).test_client()
    assert all(client.get(f"{V1}/products", headers={"Authorization": f"Bearer {fast}"}).status_code == 200
               for _ in range(20))
    answers = [client.get(f"{V1}/products", headers={"Authorization": f"Bearer {slow}"}).status_code for _ in range(3)]
    assert answers == [200, 429, 429]


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed next to this Python")
def test_rate_limit_holds_under_gunicorn_with_two_workers(tmp_path: Path):
    """Each of the two workers allows rate / 2: the whole server never lets a token past its rate."""
    make_customer_360(tmp_path / "marts", n=50, events=False)
    token = add_token(tmp_path / "tokens.json", "burst-manager", "manager", "M001")
    rate, burst_seconds = 10, 1
    port, log = free_port(), tmp_path / "gunicorn.log"
    proc = start(tmp_path, port, log, extra_env={"LINGXI_RATE_LIMITS": f"manager={rate}", "LINGXI_RATE_WORKERS": "2",
                                                 "LINGXI_RATE_BURST_SECONDS": str(burst_seconds)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
        time.sleep(1.5)  # both workers up (each loads the app on its own)
        headers = {"Authorization": f"Bearer {token}"}

        def call(_):
            return requests.get(f"{base}/api/v1/products", headers=headers, timeout=10)

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(120)))
        elapsed = time.monotonic() - started
    finally:
        kill9(proc)
    ok = sum(r.status_code == 200 for r in answers)
    limited = [r for r in answers if r.status_code == 429]
    assert ok + len(limited) == len(answers)  # nothing else, never a 5xx
    assert limited and all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert all(r.json()["error"]["code"] == "rate_limited" for r in limited)
    allowed = rate * burst_seconds + rate * elapsed  # the burst plus what the rate refills meanwhile
    print(f"RATE_LIMIT ok={ok} limited={len(limited)} elapsed={elapsed:.2f}s allowed<={allowed:.0f}")
    assert 1 <= ok <= allowed + 2
