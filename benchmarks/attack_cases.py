"""The scripted attack's cases, one function per class; each sends its attempts through ``Client``.

Two managers, A and B (real managers of the bank's books), a CRM token and an admin token take
part; A plays the attacker against B's book. Every function is bounded (a fixed list of attempts).
"""
from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchmarks.attack_client import Client, is_4xx, read_status

V1 = "/api/v1"
SQL = ("' OR '1'='1", "1; DROP TABLE feedback; --", "\" OR \"\"=\"", "M0001' --", "%27%20OR%201=1")


@dataclass
class Cast:
    """Who takes part and what exists before the attack (lists made by A and B for their own customers)."""

    tokens: dict[str, str]
    manager_a: str
    manager_b: str
    book_a: list[str]
    book_b: list[str]
    lists_a: list[dict[str, Any]] = field(default_factory=list)
    lists_b: list[dict[str, Any]] = field(default_factory=list)
    revoke: Callable[[], None] | None = None  # revokes the token ``tokens["revoked"]``


def make_lists(c: Client, token: str, book: list[str], want: int = 3) -> list[dict[str, Any]]:
    """Stage-one lists (with at least two products) for customers of the token's own book."""
    out = []
    for cid in book[:40]:
        r = c.request("POST", f"{V1}/recommendations", token=token, json={"customer_id": cid, "k": 5})
        if r is not None and r.status_code == 201 and len(r.json()["products"]) >= 2:
            out.append(r.json())
            if len(out) == want:
                break
    return out


def _item(rec: dict[str, Any], response: str = "already_owns", i: int = 0) -> dict[str, Any]:
    return {"items": [{"product_id": rec["products"][i]["product_id"], "response": response}]}


# -- auth ------------------------------------------------------------------------------------------
def auth(c: Client, cast: Cast) -> None:
    t, cid, rec = cast.tokens, cast.book_a[0], cast.lists_a[0]
    rid = rec["recommendation_id"]
    endpoints = [("GET", f"{V1}/customers/{cid}", None), ("POST", f"{V1}/segments/query", {"limit": 5}),
                 ("POST", f"{V1}/recommendations", {"customer_id": cid}), ("GET", f"{V1}/recommendations/{rid}", None),
                 ("POST", f"{V1}/recommendations/{rid}/stage-two", {}), ("GET", f"{V1}/dashboard", None),
                 ("POST", f"{V1}/recommendations/{rid}/feedback", _item(rec)), ("GET", f"{V1}/products", None)]
    # (the OpenAPI document and the API reference are public by design: nothing in them is the bank's)
    valid = t["a"]
    tampered = valid[:-1] + ("A" if valid[-1] != "A" else "B")
    forged = f"lx_{valid.split('_')[1]}_" + "x" * 43  # a real token id with a made-up secret
    headers = [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
               {"Authorization": f"Bearer {tampered}"}, {"Authorization": f"Bearer {forged}"},
               {"Authorization": "Bearer lx_000000000000_" + "a" * 43}, {"Authorization": f"Token {valid}"},
               {"Authorization": f"Bearer {valid} extra"}]
    for method, path, body in endpoints:
        for h in headers:
            c.attempt("auth", f"{method} {path.split('/')[3]} with {str(h)[:30]}", method, path, json=body,
                      headers={**h, "Idempotency-Key": "auth-attack-key"},
                      refused=lambda r: r.status_code == 401)
    # role escalation: each role at what it may not do
    cold = {"product": {"product_id": "NEW_ATTACK", "name": "x", "category": "savings", "risk_level": "R1"}}
    for role in ("a", "crm"):
        c.attempt("auth", f"{role} -> dashboard", "GET", f"{V1}/dashboard", token=t[role],
                  refused=lambda r: r.status_code == 403)
        c.attempt("auth", f"{role} -> cold start", "POST", f"{V1}/products/cold-start", token=t[role], json=cold,
                  refused=lambda r: r.status_code == 403)
    admin_writes = [("POST", f"{V1}/recommendations", {"customer_id": cid, "manager_id": cast.manager_a}),
                    ("POST", f"{V1}/recommendations/{rid}/stage-two", {"manager_id": cast.manager_a}),
                    ("POST", f"{V1}/recommendations/{rid}/feedback", {**_item(rec), "manager_id": cast.manager_a})]
    for method, path, body in admin_writes:
        c.attempt("auth", f"admin writes {path.split('/')[-1]}", method, path, token=t["admin"], json=body,
                  headers={"Idempotency-Key": "admin-attack-key"},
                  refused=lambda r: r.status_code == 403 and r.json()["error"]["code"] == "admin_read_only")
    c.attempt("auth", "manager A acting as B", "POST", f"{V1}/recommendations", token=t["a"],
              json={"customer_id": cid, "manager_id": cast.manager_b}, refused=lambda r: r.status_code == 403)
    # a revoked token stops working (the tokens file is re-read within 2 s)
    if cast.revoke is not None:
        cast.revoke()
        time.sleep(2.5)
        c.attempt("auth", "revoked token", "GET", f"{V1}/products", token=t["revoked"],
                  refused=lambda r: r.status_code == 401)


# -- cross-book ------------------------------------------------------------------------------------
def cross_book(c: Client, cast: Cast, lookups: int = 100) -> None:
    t, a, b = cast.tokens, cast.manager_a, cast.manager_b
    own = set(cast.book_a)
    for cid in cast.book_b[:lookups]:
        c.attempt("cross_book", "A looks up B's customer", "GET", f"{V1}/customers/{cid}", token=t["a"], cross_book=True)
        c.attempt("cross_book", "CRM for A looks up B's customer", "GET", f"{V1}/customers/{cid}?manager_id={a}",
                  token=t["crm"], cross_book=True)
    for cid in cast.book_b[:20]:
        c.attempt("cross_book", "A recommends for B's customer", "POST", f"{V1}/recommendations", token=t["a"],
                  json={"customer_id": cid}, cross_book=True)
        c.attempt("cross_book", "CRM for A recommends for B's customer", "POST", f"{V1}/recommendations",
                  token=t["crm"], json={"customer_id": cid, "manager_id": a}, cross_book=True)
    for i, rec in enumerate(cast.lists_b):
        rid = rec["recommendation_id"]
        c.attempt("cross_book", "A reads B's list", "GET", f"{V1}/recommendations/{rid}", token=t["a"], cross_book=True)
        c.attempt("cross_book", "A writes already_owns on B's list", "POST", f"{V1}/recommendations/{rid}/feedback",
                  token=t["a"], json=_item(rec), headers={"Idempotency-Key": f"xbook-a-{i:04d}"}, cross_book=True)
        c.attempt("cross_book", "A runs stage two on B's list", "POST", f"{V1}/recommendations/{rid}/stage-two",
                  token=t["a"], json={}, cross_book=True)
        c.attempt("cross_book", "CRM for A reads B's list", "GET", f"{V1}/recommendations/{rid}?manager_id={a}",
                  token=t["crm"], cross_book=True)
        c.attempt("cross_book", "CRM for A answers on B's list", "POST", f"{V1}/recommendations/{rid}/feedback",
                  token=t["crm"], json={**_item(rec), "manager_id": a}, headers={"Idempotency-Key": f"xbook-c-{i:04d}"},
                  cross_book=True)
        c.attempt("cross_book", "CRM for A: stage two on B's list", "POST", f"{V1}/recommendations/{rid}/stage-two",
                  token=t["crm"], json={"manager_id": a}, cross_book=True)
    c.attempt("cross_book", "A pages B's book by naming B", "POST", f"{V1}/segments/query", token=t["a"],
              json={"limit": 1000, "manager_id": b}, cross_book=True)
    c.attempt("cross_book", "CRM without a manager", "GET", f"{V1}/customers/{cast.book_b[0]}", token=t["crm"],
              cross_book=True)
    c.attempt("cross_book", "CRM pages without a manager", "POST", f"{V1}/segments/query", token=t["crm"],
              json={"limit": 1000}, cross_book=True)
    _page_everything(c, cast, own)
    # the same answer for a customer of another book and for no customer at all: no existence oracle
    foreign = c.request("GET", f"{V1}/customers/{cast.book_b[0]}", token=t["a"])
    unknown = c.request("GET", f"{V1}/customers/{'0' * 31}1", token=t["a"])
    same = foreign is not None and unknown is not None and (foreign.status_code, foreign.text) == (
        unknown.status_code, unknown.text)
    c.score("cross_book", "404 for another book equals 404 for no customer", foreign.status_code if foreign else None,
            refused=same, cross_book_success=not same)


def _page_everything(c: Client, cast: Cast, own: set[str]) -> None:
    """A (and the CRM for A) page the widest segment: every customer returned must be A's."""
    for label, token, extra in (("A", cast.tokens["a"], {}),
                                ("CRM for A", cast.tokens["crm"], {"manager_id": cast.manager_a})):
        cursor = None
        for _ in range(30):
            body = {"age": {"min": 0, "max": 150}, "limit": 1000, **extra, **({"cursor": cursor} if cursor else {})}
            r = c.request("POST", f"{V1}/segments/query", token=token, json=body, _scored=True)
            if r is None or r.status_code != 200:
                c.score("cross_book", f"{label} pages every customer", r.status_code if r is not None else None,
                        refused=r is not None and is_4xx(r.status_code))
                break
            page = r.json()
            foreign = sum(1 for x in page["customers"] if x["customer_id"] not in own)
            c.score("cross_book", f"{label} pages every customer", 200, refused=foreign == 0)
            with c._lock:
                c.tally.cross_book_successes += foreign  # every foreign customer shown is a leak
            cursor = page["next_cursor"]
            if cursor is None:
                break


# -- malformed -------------------------------------------------------------------------------------
def malformed(c: Client, cast: Cast) -> None:
    t, rec = cast.tokens, cast.lists_a[0]
    rid = rec["recommendation_id"]
    bodies = ["{not json", "[1, 2]", '"text"', '{"limit": NaN}', '{"limit": Infinity}', "[" * 3000 + "]" * 3000,
              b"\xff\xfe\x00\x01", "", '{"limit": "5"}', '{"limit": 2.5}', '{"limit": -1}', '{"limit": 1001}',
              '{"age": {"min": "x"}}', '{"age": {"min": 60, "max": 20}}', '{"age": [1, 2]}', '{"regions": "320200"}',
              '{"holds": {"products": ["sav_time"]}}', '{"trigger": {"types": ["x"], "within_days": 3}}',
              '{"cursor": "!!!"}', '{"cursor": "eyJzIjogMX0"}', '{"unknown": 1}', '{"limit": null}',
              '{"manager_id": null}', '{"asset_levels": []}', '{"limit": true}']
    for body in bodies:
        c.attempt("malformed", f"segments body {str(body)[:30]!r}", "POST", f"{V1}/segments/query", token=t["a"],
                  data=body, headers={"Content-Type": "application/json"})
    for body in ('{"customer_id": 12}', "{}", '{"customer_id": "' + "A" * 32 + '", "k": 0}',
                 '{"customer_id": "' + "A" * 32 + '", "k": "5"}', '{"customer_id": "' + "A" * 32 + '", "x": 1}',
                 '{"customer_id": "' + "A" * 32 + '", "explain_exclusions": "yes"}'):
        c.attempt("malformed", f"stage one {body[:30]!r}", "POST", f"{V1}/recommendations", token=t["a"], data=body,
                  headers={"Content-Type": "application/json"})
    for body in ({"items": []}, {"items": "x"}, {"items": [{"product_id": "SAV_TIME"}]},
                 {"items": [{"product_id": "SAV_TIME", "response": "maybe"}]}, {"items": [1]}):
        c.attempt("malformed", f"feedback {json.dumps(body)[:30]}", "POST", f"{V1}/recommendations/{rid}/feedback",
                  token=t["a"], json=body, headers={"Idempotency-Key": "malformed-key-1"})
    for path in (f"{V1}/customers/123", f"{V1}/customers/{'G' * 32}", f"{V1}/recommendations/{'A' * 33}",
                 f"{V1}/customers/{cast.book_a[0]}?manager_id=bad%20id", f"{V1}/customers/{cast.book_a[0]}?x=1",
                 f"{V1}/dashboard?from=2025-13-01", f"{V1}/dashboard?from=tomorrow", f"{V1}/nope"):
        c.attempt("malformed", f"GET {path[8:40]}", "GET", path, token=t["admin"])
    c.attempt("malformed", "form body", "POST", f"{V1}/segments/query", token=t["a"], data="limit=1",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    c.attempt("malformed", "DELETE products", "DELETE", f"{V1}/products", token=t["a"])
    for payload in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
                    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,
                    b"POST /api/v1/segments/query HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                    b"POST /api/v1/segments/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        c.raw("malformed", f"raw {payload[:20]!r}", payload)


# -- oversized -------------------------------------------------------------------------------------
def oversized(c: Client, cast: Cast) -> None:
    t, rec = cast.tokens, cast.lists_a[0]
    rid = rec["recommendation_id"]
    big = '{"cursor": "' + "a" * 200_000 + '"}'
    c.attempt("oversized", "200 KB declared body", "POST", f"{V1}/segments/query", token=t["a"], data=big,
              headers={"Content-Type": "application/json"})
    c.attempt("oversized", "200 KB chunked body", "POST", f"{V1}/segments/query", token=t["a"],
              data=iter([big[i:i + 8192].encode() for i in range(0, len(big), 8192)]),
              headers={"Content-Type": "application/json"})
    c.attempt("oversized", "2 MB body", "POST", f"{V1}/recommendations", token=t["a"], data="x" * 2_000_000,
              headers={"Content-Type": "application/json"})
    c.attempt("oversized", "21 feedback items", "POST", f"{V1}/recommendations/{rid}/feedback", token=t["a"],
              json={"items": [{"product_id": f"SAV_X{i}", "response": "interested"} for i in range(21)]},
              headers={"Idempotency-Key": "oversized-key-1"})
    c.attempt("oversized", "51 regions", "POST", f"{V1}/segments/query", token=t["a"],
              json={"regions": [f"{320000 + i:06d}" for i in range(51)]})
    c.attempt("oversized", "limit 100000", "POST", f"{V1}/segments/query", token=t["a"], json={"limit": 100_000})
    c.attempt("oversized", "k 1000", "POST", f"{V1}/recommendations", token=t["a"],
              json={"customer_id": cast.book_a[0], "k": 1000})
    c.attempt("oversized", "manager id of 33 characters", "POST", f"{V1}/segments/query", token=t["crm"],
              json={"manager_id": "M" * 33})
    c.attempt("oversized", "idempotency key of 129 characters", "POST", f"{V1}/recommendations/{rid}/feedback",
              token=t["a"], json=_item(rec, "interested"), headers={"Idempotency-Key": "k" * 129})
    c.attempt("oversized", "cursor of 600 characters", "POST", f"{V1}/segments/query", token=t["a"],
              json={"cursor": "a" * 600})
    c.attempt("oversized", "n_targets 5000", "POST", f"{V1}/products/cold-start", token=t["admin"],
              json={"product": {"product_id": "NEW_BIG", "name": "x", "category": "savings", "risk_level": "R1"},
                    "n_targets": 5000})
    c.raw("oversized", "URL of 10 KB", f"GET /api/v1/customers/{'A' * 10_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    c.raw("oversized", "header of 20 KB", f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 20_000}\r\n\r\n".encode())
    c.raw("oversized", "200 headers", ("GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                       + "".join(f"X-H{i}: v\r\n" for i in range(200)) + "\r\n").encode())
    c.raw("oversized", "Content-Length of 10 GB", (f"POST /api/v1/segments/query HTTP/1.1\r\nHost: x\r\n"
                                                    f"Authorization: Bearer {t['a']}\r\nContent-Type: application/json\r\n"
                                                    f"Content-Length: 10737418240\r\n\r\n{{}}").encode())


# -- injection -------------------------------------------------------------------------------------
def injection(c: Client, cast: Cast, version: str) -> None:
    t, rec = cast.tokens, cast.lists_a[0]
    rid = rec["recommendation_id"]
    for s in SQL:
        c.attempt("injection", f"customer id {s!r}", "POST", f"{V1}/recommendations", token=t["a"],
                  json={"customer_id": s})
        c.attempt("injection", f"manager id {s!r}", "POST", f"{V1}/segments/query", token=t["crm"],
                  json={"manager_id": s})
        c.attempt("injection", f"query manager id {s!r}", "GET",
                  f"{V1}/customers/{cast.book_a[0]}?manager_id={http_quote(s)}", token=t["crm"])
        c.attempt("injection", f"idempotency key {s!r}", "POST", f"{V1}/recommendations/{rid}/feedback", token=t["a"],
                  json=_item(rec, "interested"), headers={"Idempotency-Key": s.replace(" ", "_") + "-padding"})
        c.attempt("injection", f"product id {s!r}", "POST", f"{V1}/recommendations/{rid}/feedback", token=t["a"],
                  json={"items": [{"product_id": s, "response": "interested"}]}, headers={"Idempotency-Key": "inj-key-01"})
        c.attempt("injection", f"region {s!r}", "POST", f"{V1}/segments/query", token=t["a"], json={"regions": [s]})
        cursor = base64.urlsafe_b64encode(json.dumps({"s": version, "a": s}).encode()).decode().rstrip("=")
        c.attempt("injection", f"cursor with {s!r}", "POST", f"{V1}/segments/query", token=t["a"],
                  json={"cursor": cursor})
        c.attempt("injection", f"dashboard date {s!r}", "GET", f"{V1}/dashboard?from={http_quote(s)}", token=t["admin"])
    for path in ("/api/v1/customers/..%2F..%2Fetc%2Fpasswd", "/api/v1/customers/%00" + "A" * 31,
                 "/api/v1/recommendations/" + "A" * 32 + "%0d%0aX-Injected:%201", "/api/v1/../../etc/passwd"):
        c.attempt("injection", f"path {path[16:50]}", "GET", path, token=t["a"])
    for body in ({"customer_id": "A" * 32, "__proto__": {"admin": True}}, {"customer_id": "A" * 32, "k": {"$gt": 1}},
                 {"customer_id": "A" * 32, "manager_id": "M\u0000001"}, {"customer_id": "\u202e" + "A" * 31}):
        c.attempt("injection", f"body {json.dumps(body)[:40]}", "POST", f"{V1}/recommendations", token=t["a"], json=body)
    # request-id and header injection: the id must not come back as sent (it lands in logs and headers)
    for bad in ("abc\r\nSet-Cookie: x=1", "../../../../x", "a" * 300, "<script>alert(1)</script>"):
        r = c.request("GET", "/healthz", headers={"X-Request-Id": bad.replace("\r\n", "")}, _scored=True)
        echoed = r.headers.get("X-Request-Id") if r is not None else None
        c.score("injection", f"request id {bad[:20]!r}", r.status_code if r is not None else None,
                refused=r is not None and echoed != bad.replace("\r\n", ""))
    c.raw("injection", "CRLF in a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rSet-Cookie: x=1\r\n\r\n")


def http_quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


# -- idempotency -----------------------------------------------------------------------------------
def idempotency(c: Client, cast: Cast) -> None:
    t = cast.tokens
    mine, theirs = cast.lists_a[1], cast.lists_b[1]
    key = f"attack-shared-{int(time.time())}"
    url = f"{V1}/recommendations/{{}}/feedback"
    first = c.request("POST", url.format(mine["recommendation_id"]), token=t["a"], json=_item(mine, "interested"),
                      headers={"Idempotency-Key": key})
    assert first is not None and first.status_code == 201, first.text if first is not None else None
    c.attempt("idempotency", "replay to duplicate a write", "POST", url.format(mine["recommendation_id"]),
              token=t["a"], json=_item(mine, "interested"), headers={"Idempotency-Key": key},
              refused=lambda r: r.status_code == 200 and r.json() == first.json())
    c.attempt("idempotency", "same key, other body", "POST", url.format(mine["recommendation_id"]), token=t["a"],
              json=_item(mine, "not_interested"), headers={"Idempotency-Key": key},
              refused=lambda r: r.status_code == 409)
    c.attempt("idempotency", "same key, another list", "POST", url.format(cast.lists_a[2]["recommendation_id"]),
              token=t["a"], json=_item(cast.lists_a[2], "interested"), headers={"Idempotency-Key": key},
              refused=lambda r: r.status_code == 409)
    # A's key must not block B (it used to: a global key, 409) nor hand B A's stored answer
    c.attempt("idempotency", "A's key blocks B's request", "POST", url.format(theirs["recommendation_id"]),
              token=t["b"], json=_item(theirs, "interested"), headers={"Idempotency-Key": key},
              refused=lambda r: r.status_code == 201 and r.json()["manager_id"] == cast.manager_b)
    c.attempt("idempotency", "another caller replays A's key to read A's answer", "POST",
              url.format(mine["recommendation_id"]), token=t["crm"],
              json={**_item(mine, "interested"), "manager_id": cast.manager_a}, headers={"Idempotency-Key": key},
              refused=lambda r: r.status_code == 201 and r.json()["items"][0]["feedback_id"]
              != first.json()["items"][0]["feedback_id"])
    c.attempt("idempotency", "B replays A's key on A's list", "POST", url.format(mine["recommendation_id"]),
              token=t["b"], json=_item(mine, "interested"), headers={"Idempotency-Key": key}, cross_book=True)
    # a burst of identical retries: one write, the same answer to all
    race_key = f"attack-race-{int(time.time())}"
    answers: list[Any] = []
    lock = threading.Lock()

    def retry(_: int) -> None:
        r = c.request("POST", url.format(cast.lists_a[0]["recommendation_id"]), token=t["a"],
                      json=_item(cast.lists_a[0], "interested"), headers={"Idempotency-Key": race_key}, _scored=True)
        with lock:
            answers.append(r)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(retry, range(12)))
    created = [r for r in answers if r is not None and r.status_code == 201]
    bodies = {json.dumps(r.json(), sort_keys=True) for r in answers if r is not None and r.status_code in (200, 201)}
    for r in answers:
        status = r.status_code if r is not None else None
        c.score("idempotency", "concurrent retries of one key", status,
                refused=len(created) == 1 and len(bodies) == 1 and status in (200, 201))


# -- slow clients ----------------------------------------------------------------------------------
def slow_clients(c: Client, cast: Cast, connections: int, seconds: float) -> dict[str, Any]:
    """``connections`` clients dribble their headers (and one its body) a byte a second while /healthz
    is probed; a slow client is refused when the server cuts it off (or answers 4xx) before it is done."""
    probes = {"tried": 0, "ok": 0}
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            probes["tried"] += 1
            r = c.request("GET", "/healthz", timeout=2, probe=True)
            probes["ok"] += r is not None and r.status_code == 200
            time.sleep(0.5)

    def slow(i: int) -> None:
        token = cast.tokens["a"]
        head = (f"POST /api/v1/segments/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: 2\r\n") if i == 0 else "GET /healthz HTTP/1.1\r\nHost: x\r\n"
        cut_off, status = False, None
        try:
            sock = c.open_socket(timeout=seconds + 15)
            with sock:
                sock.sendall(head.encode())
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    try:
                        sock.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        cut_off = True
                        break
                    time.sleep(1.0)
                if not cut_off:
                    sock.sendall(b"\r\n{}" if i == 0 else b"\r\n")
                    status = read_status(sock)
        except OSError:
            cut_off = True
        c.score("slow_client", "slow headers" + (" and body" if i == 0 else ""), status,
                refused=cut_off or is_4xx(status))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(slow, range(connections)))
    stop.set()
    prober.join(5)
    return {"connections": connections, "seconds": seconds, "healthz_probes": probes["tried"],
            "healthz_ok_during": probes["ok"]}


# -- rate limits -----------------------------------------------------------------------------------
def rate_limit(c: Client, token: str, rate: float, burst_seconds: float, n: int = 80) -> dict[str, Any]:
    """A burst from one token under its role's default limit: 429 with Retry-After past the rate."""
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: c.request("GET", f"{V1}/products", token=token), range(n)))
    elapsed = time.monotonic() - started
    ok = sum(1 for r in answers if r is not None and r.status_code == 200)
    limited = [r for r in answers if r is not None and r.status_code == 429]
    return {"rate_per_second": rate, "burst_seconds": burst_seconds, "sent": n, "ok": ok, "limited_429": len(limited),
            "retry_after_on_every_429": all(int(r.headers.get("Retry-After", "0")) >= 1 for r in limited),
            "json_error_on_every_429": all(r.json()["error"]["code"] == "rate_limited" for r in limited),
            "allowed_at_most": round(rate * (burst_seconds + elapsed)), "seconds": round(elapsed, 2)}
