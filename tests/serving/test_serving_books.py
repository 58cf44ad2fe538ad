"""Authorization by book of business: each manager sees, recommends for, answers for and pages only
their own book; the CRM acts for a named manager and is held to that book; admin reads everything
and writes nothing in a manager's name. Each test reproduces an attack that used to succeed."""
from __future__ import annotations

import os
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving import create_app

V1 = "/api/v1"
ITEM = "SAV_DEMAND"


def stage_one(client, headers, customer_id, **extra):
    response = client.post(f"{V1}/recommendations", json={"customer_id": customer_id, **extra}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def with_products(client, headers, ids, **extra):
    for cid in ids:
        rec = stage_one(client, headers, cid, **extra)
        if len(rec["products"]) >= 2:
            return cid, rec
    raise AssertionError("no customer with two suitable products")


def is_not_found(response, code="unknown_customer"):
    return response.status_code == 404 and response.json["error"]["code"] == code


def test_manager_reads_only_own_book(client, auth, books):
    mine, theirs = books["M001"][0], books["M002"][0]
    assert client.get(f"{V1}/customers/{mine}", headers=auth("manager")).status_code == 200
    outside = client.get(f"{V1}/customers/{theirs}", headers=auth("manager"))
    unknown = client.get(f"{V1}/customers/{'AB' * 16}", headers=auth("manager"))
    assert is_not_found(outside) and outside.json == unknown.json  # indistinguishable from no such customer
    assert is_not_found(client.post(f"{V1}/recommendations", json={"customer_id": theirs}, headers=auth("manager")))


def test_manager_cannot_touch_another_books_list(client, auth, books, app):
    """Read another manager's list, write "already owns" on it (a permanent suppression), run stage two."""
    cid, rec = with_products(client, auth("manager2"), books["M002"])
    rid, product = rec["recommendation_id"], rec["products"][0]["product_id"]
    assert is_not_found(client.get(f"{V1}/recommendations/{rid}", headers=auth("manager")), "unknown_recommendation")
    answer = client.post(f"{V1}/recommendations/{rid}/feedback", headers={**auth("manager"), "Idempotency-Key": "x-book-01"},
                         json={"items": [{"product_id": product, "response": "already_owns"}]})
    assert is_not_found(answer, "unknown_recommendation")
    assert app.extensions["lingxi"].store.customer_judgements(cid) == {}  # no suppression written
    two = client.post(f"{V1}/recommendations/{rid}/stage-two", json={}, headers=auth("manager"))
    assert is_not_found(two, "unknown_recommendation")
    assert client.get(f"{V1}/recommendations/{rid}", headers=auth("manager2")).status_code == 200


def test_segments_are_limited_to_the_book(client, auth, books):
    """A manager paging every customer (age 0..150) gets their book only, never the snapshot."""
    seen, cursor = [], None
    for _ in range(50):
        body = {"age": {"min": 0, "max": 150}, "limit": 25, **({"cursor": cursor} if cursor else {})}
        page = client.post(f"{V1}/segments/query", json=body, headers=auth("manager")).json
        seen += [c["customer_id"] for c in page["customers"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == books["M001"] and page["count"] == len(books["M001"]) and page["capped"] is False
    everyone = client.post(f"{V1}/segments/query", json={"limit": 0}, headers=auth("admin")).json
    assert everyone["count"] == sum(len(ids) for ids in books.values()) and everyone["capped"] is False
    one_book = client.post(f"{V1}/segments/query", json={"limit": 0, "manager_id": "M003"}, headers=auth("admin")).json
    assert one_book["count"] == len(books["M003"])
    crm = client.post(f"{V1}/segments/query", json={"limit": 1000, "manager_id": "M002"}, headers=auth("crm")).json
    assert sorted(c["customer_id"] for c in crm["customers"]) == books["M002"]


def test_segment_results_are_capped_for_managers(app_config, auth, books):
    client = create_app({**app_config, "LINGXI_SEGMENT_BOOK_CAP": 7}).test_client()
    first = client.post(f"{V1}/segments/query", json={"limit": 5}, headers=auth("manager")).json
    second = client.post(f"{V1}/segments/query", json={"limit": 5, "cursor": first["next_cursor"]},
                         headers=auth("manager")).json
    assert first["count"] == len(books["M001"]) > 7 and first["capped"] is True
    assert len(first["customers"]) == 5 and len(second["customers"]) == 2 and second["next_cursor"] is None
    assert [c["customer_id"] for c in first["customers"] + second["customers"]] == books["M001"][:7]
    admin = client.post(f"{V1}/segments/query", json={"limit": 100}, headers=auth("admin")).json
    assert len(admin["customers"]) == 100 and admin["capped"] is False  # admin is not capped


def test_admin_reads_everything_and_writes_nothing(client, auth, books):
    cid, rec = with_products(client, auth("manager"), books["M001"])
    rid = rec["recommendation_id"]
    assert client.get(f"{V1}/customers/{books['M004'][0]}", headers=auth("admin")).status_code == 200
    assert client.get(f"{V1}/recommendations/{rid}", headers=auth("admin")).status_code == 200
    attempts = [
        client.post(f"{V1}/recommendations", json={"customer_id": cid, "manager_id": "M001"}, headers=auth("admin")),
        client.post(f"{V1}/recommendations", json={"customer_id": cid}, headers=auth("admin")),
        client.post(f"{V1}/recommendations/{rid}/stage-two", json={}, headers=auth("admin")),
        client.post(f"{V1}/recommendations/{rid}/feedback", headers={**auth("admin"), "Idempotency-Key": "admin-k-01"},
                    json={"items": [{"product_id": rec["products"][0]["product_id"], "response": "interested"}],
                          "manager_id": "M001"}),
    ]
    for response in attempts:
        assert response.status_code == 403 and response.json["error"]["code"] == "admin_read_only"


def test_crm_acts_for_a_named_manager_within_that_book(client, auth, books):
    mine, theirs = books["M001"][1], books["M002"][1]
    missing = client.get(f"{V1}/customers/{mine}", headers=auth("crm"))
    assert missing.status_code == 400 and missing.json["error"]["code"] == "missing_field"
    assert client.post(f"{V1}/recommendations", json={"customer_id": mine}, headers=auth("crm")).status_code == 400
    assert client.get(f"{V1}/customers/{mine}?manager_id=M001", headers=auth("crm")).status_code == 200
    assert is_not_found(client.get(f"{V1}/customers/{theirs}?manager_id=M001", headers=auth("crm")))
    assert is_not_found(client.post(f"{V1}/recommendations", json={"customer_id": theirs, "manager_id": "M001"},
                                    headers=auth("crm")))
    _, rec = with_products(client, auth("crm"), books["M002"], manager_id="M002")
    rid = rec["recommendation_id"]
    assert rec["manager_id"] == "M002"
    assert is_not_found(client.get(f"{V1}/recommendations/{rid}?manager_id=M001", headers=auth("crm")),
                        "unknown_recommendation")
    answer = client.post(f"{V1}/recommendations/{rid}/feedback", headers={**auth("crm"), "Idempotency-Key": "crm-x-01"},
                         json={"items": [{"product_id": rec["products"][0]["product_id"], "response": "already_owns"}],
                               "manager_id": "M001"})
    assert is_not_found(answer, "unknown_recommendation")
    assert client.get(f"{V1}/customers/{mine}?manager_id=M001&extra=1", headers=auth("crm")).status_code == 400
    assert client.get(f"{V1}/customers/{mine}?manager_id=bad%20id", headers=auth("crm")).status_code == 400


def _republish_books(marts, moves: dict[str, str]) -> None:
    books = pd.read_parquet(marts / "manager_books.parquet")
    books["manager_id"] = [moves.get(c, m) for c, m in zip(books["customer_id"], books["manager_id"])]
    tmp = marts / ".manager_books.tmp"
    pq.write_table(pa.Table.from_pandas(books, preserve_index=False), tmp)
    os.replace(tmp, marts / "manager_books.parquet")


def test_a_reassignment_moves_the_customer_with_the_books(client, auth, books, data_dir):
    """The books are part of the snapshot's version: a new books file is a new snapshot, whole."""
    cid, rec = with_products(client, auth("manager"), books["M001"])
    before = client.get(f"{V1}/customers/{cid}", headers=auth("manager")).json["snapshot"]
    time.sleep(0.01)
    _republish_books(data_dir / "marts", {cid: "M002"})
    after = client.get(f"{V1}/customers/{cid}", headers=auth("manager"))
    assert is_not_found(after)
    moved = client.get(f"{V1}/customers/{cid}", headers=auth("manager2")).json
    assert moved["book"]["manager_id"] == "M002" and moved["snapshot"] != before
    # the list follows the customer: the new manager may answer on it, the old one no longer
    assert client.get(f"{V1}/recommendations/{rec['recommendation_id']}", headers=auth("manager2")).status_code == 200
    assert is_not_found(client.get(f"{V1}/recommendations/{rec['recommendation_id']}", headers=auth("manager")),
                        "unknown_recommendation")


def test_without_books_no_one_but_admin_sees_customers(app_config, auth, books, data_dir):
    (data_dir / "marts" / "manager_books.parquet").unlink()
    client = create_app(app_config).test_client()
    assert is_not_found(client.get(f"{V1}/customers/{books['M001'][0]}", headers=auth("manager")))
    page = client.post(f"{V1}/segments/query", json={"limit": 10}, headers=auth("manager")).json
    assert page["count"] == 0 and page["customers"] == []
    admin = client.get(f"{V1}/customers/{books['M001'][0]}", headers=auth("admin")).json
    assert admin["book"] is None
    warnings = client.get("/readyz").json["checks"]["snapshot"]["warnings"]
    assert any("manager_books.parquet not found" in w for w in warnings)


def test_a_broken_books_file_keeps_the_previous_snapshot(client, auth, books, data_dir):
    assert client.get(f"{V1}/customers/{books['M001'][0]}", headers=auth("manager")).status_code == 200
    (data_dir / "marts" / "manager_books.parquet").write_bytes(b"not parquet")
    response = client.get(f"{V1}/customers/{books['M001'][0]}", headers=auth("manager"))
    assert response.status_code == 200  # the old, whole snapshot goes on answering
    version = client.get("/readyz").json["checks"]["version"]  # the new version is refused, and says why
    assert version["pending"] and "manager_books.parquet" in version["error"]


def test_books_align_with_the_snapshot(tmp_path):
    """Rows in any order and case, strangers, duplicates and customers without a manager."""
    import numpy as np

    from serving.books import load_books

    ids = np.array(sorted(f"{i:032X}".encode() for i in (1, 2, 3, 4)), dtype="S32")
    table = pa.table({"customer_id": [f"{4:032x}", f"{1:032X}", f"{9:032X}", f"{1:032X}", f"{2:032X}"],
                      "manager_id": ["M2", "M1", "M9", "M7", None],
                      "branch_id": ["B2", "B1", "B9", "B7", "B1"],
                      "branch_name_zh": ["乙", "甲", "壬", "庚", "甲"],
                      "assigned_since": pa.array([pd.Timestamp("2024-03-01").date()] * 5, pa.date32())})
    pq.write_table(table, tmp_path / "manager_books.parquet")
    warnings: list[str] = []
    books = load_books(tmp_path / "manager_books.parquet", ids, warnings)
    assert [books.manager_of(i) for i in range(4)] == ["M1", None, None, "M2"]
    assert books.mask("M1").tolist() == [True, False, False, False] and not books.mask("M9").any()
    assert books.entry(0) == {"manager_id": "M1", "branch_id": "B1", "branch_name_zh": "甲", "branch_name_en": None,
                              "assigned_since": "2024-03-01"}
    assert books.entry(1) is None
    assert len(warnings) == 3  # a stranger, a duplicate, customers without a manager
