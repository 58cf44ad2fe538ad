"""The engine serving calls per request (``ml.recommendation.contract.RecommendationEngine``).

Stage one from the nightly stage-one table when it is current (only the suppressed products are
masked), live over Feast online features otherwise; stage two with the configured re-ranker;
cold start through ``ml.cold_start``; feedback counts pushed to the online store.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from ml.cold_start.analyser import ColdStartAnalyser
from ml.core.config import Paths
from ml.core.suitability_rules import RULES_VERSION
from ml.features.layout import (
    FEATURE_SERVICE,
    FEEDBACK_CATEGORIES,
    FEEDBACK_COLUMNS,
    LAST_ANSWERS_FEATURE,
    PROFILE_SERVICE,
    STAGE_ONE_FEATURES,
    VECTOR_FEATURE,
    last_answers,
)
from ml.features.layout import FEEDBACK_RESPONSES as RESPONSES
from ml.features.online import CustomerNotFound
from ml.recommendation import control, stage_one_table
from ml.recommendation.config import RecommendConfig
from ml.recommendation.contract import (
    ALREADY_HELD,
    ColdStartResult,
    Exclusion,
    RankedProduct,
    Ranking,
    Reason,
    UnknownCustomer,
)
from ml.recommendation.explain import reason as explain_reason
from ml.recommendation.match_score import MatchReference
from ml.recommendation.rerankers import ANSWER_CODES, INTERESTED, CategoryRule
from ml.recommendation.stage_one import StageOne
from ml.recommendation.stage_two import stage_two_batch
from ml.training.model import PropensityModel


# ------------------------------------------------------------------------------------------------
# The engine (ml/recommendation/contract.py's RecommendationEngine)
# ------------------------------------------------------------------------------------------------
class Engine:
    """Per-request stage one / stage two / cold start over Feast online features (stage one from the
    nightly table when ``load_engine`` found a current one)."""

    def __init__(self, paths: Paths, model: PropensityModel, online, config: RecommendConfig | None = None,
                 reranker=None, reference: MatchReference | None = None,
                 table: stage_one_table.StageOneTable | None = None):
        self.paths = paths
        self.config = config or RecommendConfig()
        self.stage_one_scorer = StageOne(model, self.config, reference=reference)
        self.catalogue = self.stage_one_scorer.catalogue
        self.online = online
        self.reranker = reranker if reranker is not None else CategoryRule()
        self.table = table  # the nightly stage-one table, checked by load_engine (None: score live)
        self.challenger: Engine | None = None  # a second model's engine (load_engine), served to a slice
        self._read_lock = threading.Lock()

    # -- protocol -------------------------------------------------------------------------------
    def versions(self) -> Mapping[str, str]:
        ref = self.stage_one_scorer.reference
        return {"model": self.stage_one_scorer.model_version, "features": FEATURE_SERVICE,
                "suitability_rules": str(RULES_VERSION), "stage_two": self.reranker.version,
                "stage_two_objective": (self.config.stage_two_objective
                                        if getattr(self.reranker, "interest", None) is not None else "value"),
                "match_reference": f"{ref.model_version}:{ref.n_customers}" if ref else "log-scale",
                "stage_one_table": self.table.version() if self.table is not None else "none (live scoring)",
                **({"challenger": self.challenger.stage_one_scorer.model_version} if self.challenger else {})}

    def customer_profile(self, customer_id: str) -> Mapping[str, Any] | None:
        try:
            values = self._online(customer_id, service=PROFILE_SERVICE)
        except UnknownCustomer:
            return None
        vector = values.get(VECTOR_FEATURE) or []
        profile: dict[str, Any] = {"feature_service": PROFILE_SERVICE}
        for name, value in zip(STAGE_ONE_FEATURES, vector):
            profile[name] = None if value is None or not math.isfinite(float(value)) else float(value)
        for name in FEEDBACK_COLUMNS:
            profile[name] = int(values.get(name) or 0)
        profile[LAST_ANSWERS_FEATURE] = list(values.get(LAST_ANSWERS_FEATURE) or [])
        last = values.get("fb_last_response_ts")
        profile["fb_last_response_ts"] = _iso(last)
        return profile

    def stage_one(self, customer_id: str, k: int, *, explain_exclusions: bool = False,
                  suppressed: Mapping[str, str] | None = None) -> Ranking:
        s1 = self.stage_one_scorer
        k = self._k(k)
        reported, blocked = self._suppressions(suppressed)
        row = self._table_row(customer_id, suppressed)
        if row is not None:  # the nightly scores: rank the row minus the suppressed products
            x = row.x[None, :]
            allowed = ~np.isnan(row.probability)[None, :]
            if blocked is not None:
                allowed &= ~blocked
            top = s1.rank(row.ranking_key[None, :], allowed, k)[0]
            top = top[top >= 0]
            p = row.probability[top]
        else:
            features, _ = self._features(customer_id)
            lists = s1.score_batch(features, k, reported=reported, blocked=blocked)
            x = lists.x
            top = lists.top[0][lists.top[0] >= 0]
            p = lists.probabilities[0, top]
        products = self._ranked(x[0], top, p, s1.match(p, top))
        excluded = self._excluded(x, reported, blocked, suppressed) if explain_exclusions else ()
        return Ranking(products, s1.model_version, excluded)

    def stage_one_control(self, customer_id: str, k: int, *, suppressed: Mapping[str, str] | None = None,
                          also_blocked: Sequence[str] = ()) -> Ranking:
        """The control arm: the suitable products ranked by the rule-based match score alone (no
        model), under the same suppressions; ``also_blocked`` (e.g. products already shown) too."""
        s1 = self.stage_one_scorer
        k = self._k(k)
        reported, blocked = self._suppressions(suppressed)
        if also_blocked:
            blocked = np.zeros((1, len(s1.products)), dtype=bool) if blocked is None else blocked.copy()
            blocked[0, [j for j, p in enumerate(s1.products) if p in set(also_blocked)]] = True
        row = self._table_row(customer_id, suppressed)
        if row is not None:
            x = row.x[None, :]
            allowed = ~np.isnan(row.probability)[None, :]
            if blocked is not None:
                allowed &= ~blocked
        else:
            features, _ = self._features(customer_id)
            lists = s1.score_batch(features, k, reported=reported, blocked=blocked)
            x, allowed = lists.x, lists.allowed
        scores = control.rule_matrix(x, s1.products, self.catalogue)
        top = control.rule_top(scores, allowed, k)[0]
        out = []
        for j in top[top >= 0]:
            product = self.catalogue[s1.products[j]]
            parts = control.rule_reasons(x, product)
            out.append(RankedProduct(product.product_id, round(float(scores[0, j]) / 100, 6),
                                     int(round(float(scores[0, j]))), parts[: self.config.max_reasons], product.tags))
        return Ranking(tuple(out), control.CONTROL_VERSION, ())

    def _table_row(self, customer_id: str, suppressed: Mapping[str, str] | None) -> stage_one_table.TableRow | None:
        """The customer's nightly row, unless a reported holding changes the features (then the
        holding counts and complement effects move every score: score live)."""
        if self.table is None or any(reason == ALREADY_HELD for reason in (suppressed or {}).values()):
            return None
        return self.table.row(customer_id)

    def stage_two(self, customer_id: str, shown: Sequence[str], feedback: Mapping[str, str], k: int, *,
                  explain_exclusions: bool = False, suppressed: Mapping[str, str] | None = None) -> Ranking:
        s1 = self.stage_one_scorer
        k = self._k(k)
        x, fb = self._features(customer_id)
        index = {p: j for j, p in enumerate(s1.products)}
        shown_mask = np.zeros((1, len(s1.products)), dtype=bool)
        answers = np.zeros((1, len(s1.products)), dtype=np.int8)
        for pid in shown:
            if pid in index:
                shown_mask[0, index[pid]] = True
        session = {"interested": {}, "not_interested": {}, "already_owns": {}}
        for pid, response in feedback.items():
            if response not in ANSWER_CODES:
                raise ValueError(f"unknown response {response!r}")
            if pid in index:
                answers[0, index[pid]] = ANSWER_CODES[response]
                shown_mask[0, index[pid]] = True
            if pid in self.catalogue:
                category = self.catalogue[pid].category
                session[response][category] = session[response].get(category, 0) + 1
        # holdings reported before this session (this session's "already owns" are in feedback)
        earlier = {p: r for p, r in (suppressed or {}).items()
                   if not (r == ALREADY_HELD and feedback.get(p) == "already_owns")}
        reported_before, _ = self._suppressions(earlier)
        reported_all, blocked = self._suppressions(suppressed)
        prior = self._prior_feedback(fb, session)
        # every suppressed product (reported holdings included) is blocked; answers "already owns"
        # of this session become holding corrections inside stage_two_batch
        lists = stage_two_batch(s1, self.reranker, x, shown_mask, answers, k, reported=reported_before,
                                blocked=blocked, prior=prior, objective=self.config.stage_two_objective)
        top = lists.top[0][lists.top[0] >= 0]
        p = lists.probabilities[0, top]
        # interest objective: the score is P(interested | answers) and the match its percentage
        match = np.clip(np.round(100 * p), 0, 100).astype(int) if lists.kind == "interest" else s1.match(p, top)
        products = self._ranked(lists.x[0], top, p, match, feedback_reasons=self._feedback_reasons(top, answers[0]))
        excluded = ()
        if explain_exclusions:
            held = np.zeros((1, len(self.catalogue)), dtype=bool)
            held[:, s1.positions] = answers == ANSWER_CODES["already_owns"]
            if reported_all is not None:
                held |= reported_all
            excluded = self._excluded(lists.x, held, blocked, suppressed)
        return Ranking(products, f"{s1.model_version}+{self.reranker.version}", excluded,
                       "interest" if lists.kind == "interest" else "expected_value")

    def cold_start(self, product: Mapping[str, Any], n: int,
                   assumptions: Mapping[str, float] | None = None) -> ColdStartResult:
        analyser = ColdStartAnalyser.for_engine(self)
        return analyser.analyse(product, n, assumptions)

    def push_feedback(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Set each customer's ``customer_feedback`` aggregates online to the counts of ``rows`` — all of
        the customer's committed answers (as the nightly source counts the whole feedback export), so
        pushing twice changes nothing, and the online store keeps whichever of two pushes counts more
        answers (``OnlineFeatures.push_feedback``): a late push of an older read changes nothing."""
        if not rows:
            return
        category = {p.product_id: p.category for p in self.catalogue}
        counts: dict[str, dict[str, int]] = {}
        answered: dict[str, list[tuple]] = {}
        last: dict[str, pd.Timestamp] = {}
        for row in rows:
            customer_id = row["customer_id"]
            acc = counts.setdefault(customer_id, dict.fromkeys(FEEDBACK_COLUMNS, 0))
            answered.setdefault(customer_id, [])
            recorded = pd.Timestamp(row["recorded_at"])
            recorded = recorded.tz_localize("UTC") if recorded.tzinfo is None else recorded.tz_convert("UTC")
            last[customer_id] = max(last.get(customer_id, recorded), recorded)
            key = f"fb_{row['response']}_{category.get(row['product_id'])}"
            if key in acc:  # products outside the catalogue are not counted (as in the nightly join)
                acc[key] += 1
                answered[customer_id].append((row["product_id"], row["response"], recorded))
        frame = pd.DataFrame([{"customer_id": c, "event_timestamp": last[c], **counts[c], "fb_last_response_ts": last[c],
                               LAST_ANSWERS_FEATURE: last_answers(answered[c])} for c in sorted(counts)])
        with self._read_lock:  # the store's one SQLite connection is shared with the reads
            self.online.push_feedback(frame)

    # -- helpers --------------------------------------------------------------------------------
    def _k(self, k: int) -> int:
        k = int(k) if k else self.config.default_k
        return max(1, min(k, self.config.max_k))

    def _online(self, customer_id: str, service: str = FEATURE_SERVICE) -> dict:
        try:
            with self._read_lock:  # one SQLite connection per store object
                if service == FEATURE_SERVICE:
                    return self.online.get(customer_id, datetime.now(timezone.utc))
                row = self.online.store.get_online_features(
                    features=self.online.store.get_feature_service(service),
                    entity_rows=[{"customer_id": customer_id}]).to_dict()
        except CustomerNotFound:
            raise UnknownCustomer(customer_id) from None
        values = {name: column[0] for name, column in row.items()}
        if not values.get(VECTOR_FEATURE):
            raise UnknownCustomer(customer_id)
        return values

    def _features(self, customer_id: str) -> tuple[np.ndarray, dict]:
        values = self._online(customer_id)
        vector = np.asarray(values[VECTOR_FEATURE], dtype=np.float32)
        if vector.shape != (len(STAGE_ONE_FEATURES),):
            raise UnknownCustomer(customer_id)
        return vector[None, :], values

    def _suppressions(self, suppressed: Mapping[str, str] | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(reported held (1, P_all) or None, blocked (1, P) or None) from the serving mapping."""
        if not suppressed:
            return None, None
        s1 = self.stage_one_scorer
        reported = np.zeros((1, len(self.catalogue)), dtype=bool)
        blocked = np.zeros((1, len(s1.products)), dtype=bool)
        index = {p: j for j, p in enumerate(s1.products)}
        for pid, reason in suppressed.items():
            if reason == ALREADY_HELD and pid in self.catalogue:
                reported[0, self.catalogue.index(pid)] = True
            if pid in index:
                blocked[0, index[pid]] = True
        return reported, blocked

    def _prior_feedback(self, fb: Mapping[str, Any], session: Mapping[str, Mapping[str, int]]) -> np.ndarray:
        """(1, 3, 4) earlier answers: the online counts minus this session's (pushed already)."""
        prior = np.zeros((1, len(RESPONSES), len(FEEDBACK_CATEGORIES)))
        for r, response in enumerate(RESPONSES):
            for c, category in enumerate(FEEDBACK_CATEGORIES):
                total = int(fb.get(f"fb_{response}_{category}") or 0)
                prior[0, r, c] = max(total - session[response].get(category, 0), 0)
        return prior

    def _ranked(self, x_row: np.ndarray, top: np.ndarray, p: np.ndarray, match: np.ndarray,
                feedback_reasons: Sequence[tuple[Reason, ...]] | None = None) -> tuple[RankedProduct, ...]:
        s1 = self.stage_one_scorer
        model_reasons = s1.reasons(x_row, list(top))
        out = []
        for i, j in enumerate(top):
            product = self.catalogue[s1.products[j]]
            extra = feedback_reasons[i] if feedback_reasons else ()
            why = (extra + model_reasons[i])[: max(self.config.max_reasons, len(extra))]
            out.append(RankedProduct(product.product_id, round(float(p[i]), 6), int(match[i]), why, product.tags,
                                     float(s1.values[j])))
        return tuple(out)

    def _feedback_reasons(self, top: np.ndarray, answers: np.ndarray) -> list[tuple[Reason, ...]]:
        """A reason naming the shown product whose answer raised this candidate, if any."""

        s1 = self.stage_one_scorer
        complement = (s1.model.relations or {}).get("complement")
        liked = [j for j in np.flatnonzero(answers == INTERESTED)]
        out = []
        for j in top:
            reason: tuple[Reason, ...] = ()
            same = [a for a in liked if s1.categories[a] == s1.categories[j]]
            related = [a for a in liked if complement is not None
                       and complement[s1.positions[a], s1.positions[j]] > 0]
            if related:
                pid = s1.products[related[0]]
                reason = (explain_reason("FEEDBACK_COMPLEMENT", "interested in %(product)s, which goes with this product",
                                         {"product": self.catalogue[pid].name_en}, product=pid),)
            elif same:
                pid = s1.products[same[0]]
                reason = (explain_reason("FEEDBACK_SAME_CATEGORY", "interested in %(product)s: another %(category)s product",
                                         {"product": self.catalogue[pid].name_en}, product=pid,
                                         category=s1.categories[j]),)
            out.append(reason)
        return out

    def _excluded(self, x: np.ndarray, reported: np.ndarray | None, blocked: np.ndarray | None,
                  suppressed: Mapping[str, str] | None) -> tuple[Exclusion, ...]:
        s1 = self.stage_one_scorer
        elig = s1.eligibility(x, reported)
        out = []
        for j, pid in enumerate(s1.products):
            codes = list(elig.codes(0, int(s1.positions[j])))
            extra = (suppressed or {}).get(pid)
            if extra and extra not in codes:
                codes.append(extra)
            if codes:
                out.append(Exclusion(pid, tuple(codes)))
        return tuple(out)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return str(value)
