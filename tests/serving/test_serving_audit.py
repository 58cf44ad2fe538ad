"""The audit log: every read of a customer by a person is recorded (who, role, acting manager, when,
which customer, which endpoint, how it ended) and exportable as CSV."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

from serving import create_app
from serving.store.audit import iter_reads

V1 = "/api/v1"
T0 = datetime(2025, 7, 1, 1, 0, tzinfo=timezone.utc)


def reads(app):
    return [r for batch in iter_reads(app.extensions["lingxi"].store, datetime(2000, 1, 1, tzinfo=timezone.utc))
            for r in batch]


def test_every_customer_read_is_recorded(app, client, auth, books, clock):
    clock.now = T0
    mine, theirs = books["M001"][0], books["M002"][0]
    client.get(f"{V1}/customers/{mine}", headers={**auth("manager"), "X-Request-Id": "audit-1"})
    client.get(f"{V1}/customers/{theirs}", headers=auth("manager"))           # refused: recorded as a 404
    client.get(f"{V1}/customers/{theirs}?manager_id=M002", headers=auth("crm"))
    rec = client.post(f"{V1}/recommendations", json={"customer_id": mine}, headers=auth("manager")).json
    client.get(f"{V1}/recommendations/{rec['recommendation_id']}", headers=auth("admin"))
    page = client.post(f"{V1}/segments/query", json={"limit": 3, "manager_id": "M003"}, headers=auth("admin")).json
    client.get(f"{V1}/customers/{mine}")                                        # no token: nobody to record
    client.get(f"{V1}/products", headers=auth("manager"))                       # no customer read
    client.post(f"{V1}/segments/query", json={"limit": 0}, headers=auth("admin"))  # a count reads no customer

    rows = reads(app)
    got = [(r.token_name, r.role, r.acting_manager_id, r.customer_id, r.method, r.endpoint, r.status) for r in rows]
    assert got == [
        ("manager-m001", "manager", "M001", mine, "GET", "/api/v1/customers/<customer_id>", 200),
        ("manager-m001", "manager", "M001", theirs, "GET", "/api/v1/customers/<customer_id>", 404),
        ("crm-test", "crm", "M002", theirs, "GET", "/api/v1/customers/<customer_id>", 200),
        ("manager-m001", "manager", "M001", mine, "POST", "/api/v1/recommendations", 201),
        ("admin-test", "admin", None, mine, "GET", "/api/v1/recommendations/<recommendation_id>", 200),
        *[("admin-test", "admin", None, c["customer_id"], "POST", "/api/v1/segments/query", 200)
          for c in page["customers"]],
    ]
    assert rows[0].request_id == "audit-1" and rows[0].read_at == T0 and len(rows[0].token_id) == 12


def test_a_read_that_cannot_be_recorded_is_not_answered(app, client, auth, books, monkeypatch):
    import serving.audit_log

    def broken(store, rows):
        raise OSError("disk full")

    monkeypatch.setattr(serving.audit_log, "record_reads", broken)
    response = client.get(f"{V1}/customers/{books['M001'][0]}", headers=auth("manager"))
    assert response.status_code == 503 and response.json["error"]["code"] == "audit_unavailable"
    assert "attributes" not in response.json
    assert client.get(f"{V1}/products", headers=auth("manager")).status_code == 200  # no customer, no audit


def test_export_cli_writes_a_period_as_csv(app_config, auth, books, clock, data_dir, tmp_path, monkeypatch, capsys):
    from serving.audit import main

    app = create_app(app_config)
    client = app.test_client()
    for day, cid in enumerate(books["M001"][:3]):
        clock.now = T0 + timedelta(days=day)
        assert client.get(f"{V1}/customers/{cid}", headers=auth("manager")).status_code == 200
    app.extensions["lingxi"].store.close()
    monkeypatch.setenv("LINGXI_DATA_DIR", str(data_dir))
    monkeypatch.delenv("LINGXI_FEEDBACK_DB_URL", raising=False)
    out = tmp_path / "audit" / "reads.csv"
    assert main(["export", "--since", "2025-07-02", "--until", "2025-07-03T10:00:00+08:00", "--out", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["customer_id"] for r in rows] == books["M001"][1:3]
    assert rows[0] == {"read_at": "2025-07-02T01:00:00Z", "token_id": rows[0]["token_id"], "token_name": "manager-m001",
                       "role": "manager", "acting_manager_id": "M001", "customer_id": books["M001"][1],
                       "method": "GET", "endpoint": "/api/v1/customers/<customer_id>", "status": "200",
                       "request_id": rows[0]["request_id"]}
    assert "2 customer reads" in capsys.readouterr().err
    assert main(["export", "--since", "yesterday", "--out", str(out)]) == 2
