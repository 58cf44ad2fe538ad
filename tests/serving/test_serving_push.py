"""Feedback pushes to the online store: ordered across workers, retried when they fail, bounded."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from serving_fakes import FakeEngine, make_rec, record
from test_serving_api import customer_with_products, feedback

from serving import create_app
from serving.engine import EngineSlot
from serving.feedback_push import FeedbackPusher
from serving.store import open_store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_push_is_retried_until_it_succeeds(app_config, auth, books, data_dir):
    """The online store is down for two pushes: the answer reaches it on the third, not never."""
    engine, clock = FakeEngine(data_dir, fail_push=2), Clock()
    app = create_app({**app_config, "LINGXI_ENGINE": engine, "LINGXI_PUSH_INTERVAL_SECONDS": 3600})
    client, services = app.test_client(), app.extensions["lingxi"]
    pusher = services.pusher = FeedbackPusher(services.store, services.engine_slot, 3600, max_attempts=5,
                                              retry_seconds=1, clock=clock, background=False)
    cid, rec = customer_with_products(client, auth("manager"), books["M001"])  # the manager answers for its book
    item = [{"product_id": rec["products"][0]["product_id"], "response": "interested"}]
    assert feedback(client, auth("manager"), rec["recommendation_id"], item, "retry-push-1").status_code == 201
    assert not pusher.flush() and pusher.retrying() == {cid: 1}
    assert pusher.flush() and engine.pushed == []          # not due yet: backing off
    clock.now += 1
    assert not pusher.flush() and pusher.retrying() == {cid: 2}
    clock.now += 1.5
    assert pusher.flush() and pusher.retrying() == {cid: 2}  # not due before 2 s after the second failure
    clock.now += 1
    assert pusher.flush() and [(r["customer_id"], r["response"]) for r in engine.pushed] == [(cid, "interested")]
    assert pusher.retrying() == {}


def test_a_push_failing_inside_the_request_is_retried_in_the_background(app_config, auth, books, data_dir):
    engine = FakeEngine(data_dir, fail_push=1)
    app = create_app({**app_config, "LINGXI_ENGINE": engine})  # interval 0: pushed inside the request
    client = app.test_client()
    cid, rec = customer_with_products(client, auth("manager"), books["M001"])  # the manager answers for its book
    item = [{"product_id": rec["products"][0]["product_id"], "response": "not_interested"}]
    assert feedback(client, auth("manager"), rec["recommendation_id"], item, "retry-push-2").status_code == 201
    deadline = time.monotonic() + 10
    while not engine.pushed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(r["customer_id"], r["response"]) for r in engine.pushed] == [(cid, "not_interested")]


def test_retries_are_bounded_and_logged(store_url, data_dir, caplog):
    store = open_store(store_url)
    rec = make_rec()
    store.log_recommendation(rec)
    record(store, rec, "bounded-1", [("SAV_TIME", "interested")])
    clock = Clock()
    pusher = FeedbackPusher(store, EngineSlot(FakeEngine(data_dir, fail_push=True)), 3600, max_attempts=3,
                            retry_seconds=1, clock=clock, background=False)
    with caplog.at_level(logging.WARNING, logger="lingxi.serving"):
        for _ in range(3):
            pusher.submit([rec.customer_id])
            assert not pusher.flush()
            clock.now += 10
    store.close()
    assert pusher.retrying() == {} and pusher.flush()  # given up: nothing left to retry
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("push_failed") == 3 and events.count("push_dropped") == 1


class _Online:
    """One online table written by two workers' engines; worker A stalls between its read of the
    store and its write (a slow Feast push), long enough for B to read and write a newer count."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.a_read, self.b_wrote = threading.Event(), threading.Event()

    def engine(self, slow: bool):
        online = self

        class Engine(FakeEngine):
            def push_feedback(self, rows):
                if slow:
                    online.a_read.set()
                    online.b_wrote.wait(1.5)
                for row in rows:
                    online.counts[row["customer_id"]] = sum(r["customer_id"] == row["customer_id"] for r in rows)
                if not slow:
                    online.b_wrote.set()
        return Engine


def test_two_workers_pushing_out_of_order_leave_the_newer_count(store_url, data_dir):
    online = _Online()
    store_a, store_b = open_store(store_url), open_store(store_url, create=False)  # two workers' stores
    pusher_a = FeedbackPusher(store_a, EngineSlot(online.engine(slow=True)(data_dir)), 0)
    pusher_b = FeedbackPusher(store_b, EngineSlot(online.engine(slow=False)(data_dir)), 0)
    rec = make_rec()
    store_a.log_recommendation(rec)
    record(store_a, rec, "order-1", [("SAV_TIME", "interested")])
    worker_a = threading.Thread(target=pusher_a.push, args=([rec.customer_id],))
    worker_a.start()
    assert online.a_read.wait(10)  # A has read one answer and is on its way to the online store
    record(store_b, rec, "order-2", [("PRO_LIFE", "not_interested")])
    assert pusher_b.push([rec.customer_id])  # B reads two answers and pushes them
    worker_a.join(10)
    store_a.close()
    store_b.close()
    assert online.counts[rec.customer_id] == 2  # A's older count did not land last


def test_the_push_lock_is_shared_by_workers_and_bounded(store_url):
    """One lock for every worker's store; a push stuck elsewhere makes a wait fail, not hang."""
    one, two = open_store(store_url), open_store(store_url, create=False)
    with one.push_lock():
        started = time.monotonic()
        with pytest.raises(TimeoutError), two.push_lock(timeout=0.2):
            pass
        assert time.monotonic() - started < 5
    with two.push_lock(timeout=0.2):  # released
        pass
    one.close()
    two.close()
