"""ml.imbalance: every strategy fits; samplers only ever see training rows; weights survive."""
from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from imblearn.ensemble import BalancedRandomForestClassifier, EasyEnsembleClassifier
from imblearn.over_sampling import SMOTE
from imblearn.under_sampling import RandomUnderSampler
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold

from ml.core import metrics as M
from ml.imbalance.estimators import BalancedLGBMClassifier, PopularityClassifier
from ml.imbalance.pipelines import GROUP_BASELINES, STRATEGIES, calibrate, make_pipeline
from ml.imbalance.samplers import ClusterNegativeSampler, carry_weights

NUMERIC = ["x1", "x2", "noise"]
CATEGORICAL = ["segment", "channel"]
SMALL = {"n_estimators": 60}  # LightGBM kept small: these are behaviour tests, not benchmarks


def small(pipe):
    """Fewer ensemble members than the registry's defaults, to keep the tests fast."""
    est = pipe.named_steps["estimator"]
    if isinstance(est, BalancedRandomForestClassifier):
        pipe.set_params(estimator__n_estimators=40)
    elif isinstance(est, EasyEnsembleClassifier):
        pipe.set_params(estimator__n_estimators=3)
    return pipe


def synthetic(n: int = 1600, seed: int = 0, rate: float = 0.06) -> tuple[pd.DataFrame, np.ndarray]:
    """Imbalanced data with a real signal in x1 and segment, missing values and a rare level."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "x1": rng.normal(size=n),
        "x2": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "segment": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
        "channel": rng.choice(["web", "branch", None], size=n, p=[0.6, 0.35, 0.05]),
    })
    X.loc[rng.random(n) < 0.05, "x2"] = np.nan
    signal = (1.5 * X["x1"] + 1.0 * (X["segment"] == "c") + 0.5 * X["x2"].fillna(0)).to_numpy()
    lo, hi = -20.0, 20.0  # intercept giving the wanted positive rate in expectation
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 / (1 + np.exp(-(signal + mid)))).mean() < rate else (lo, mid)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal + lo)))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def data():
    return synthetic()


def split(X, y, seed=0):
    train, test = next(StratifiedKFold(4, shuffle=True, random_state=seed).split(X, y))
    return X.iloc[train], y[train], X.iloc[test], y[test]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_fits_predicts_and_ranks(strategy, data):
    X, y = data
    X_tr, y_tr, X_te, y_te = split(X, y)
    assert 0.03 < y.mean() < 0.15
    pipe = small(make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=3, **SMALL))
    assert [name for name, _ in pipe.steps] == ["preprocess", "sampler", "estimator"]
    pipe.fit(X_tr, y_tr)
    p = pipe.predict_proba(X_te)[:, 1]
    assert p.shape == (len(X_te),)
    assert np.all((p >= 0) & (p <= 1))
    if strategy == "dummy":
        assert np.allclose(p, y_tr.mean())  # the prior, for everyone
    else:
        assert M.roc_auc(y_te, p) > 0.75, strategy
    # same seed, same predictions
    again = small(make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=3, **SMALL)).fit(X_tr, y_tr)
    np.testing.assert_allclose(again.predict_proba(X_te)[:, 1], p)


def test_sampler_strategies_have_a_sampler_and_others_none():
    with_sampler = {"smote", "adasyn", "random_under", "cluster_negatives"}
    for strategy in STRATEGIES:
        sampler = make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=0).named_steps["sampler"]
        assert (sampler != "passthrough") == (strategy in with_sampler), strategy


class SpySampler(BaseEstimator):
    """Wraps a sampler and records the row labels (index) of every X it resamples."""

    def __init__(self, sampler=None):
        self.sampler = sampler

    def fit_resample(self, X, y):
        self.seen_index_ = list(X.index)
        self.calls_ = getattr(self, "calls_", 0) + 1
        out = clone(self.sampler).fit_resample(X, y)
        self.sample_indices_ = getattr(self.sampler, "sample_indices_", None)
        return out


@pytest.mark.parametrize("strategy", ["smote", "adasyn", "random_under", "cluster_negatives"])
def test_resampling_only_ever_sees_the_training_fold(strategy, data):
    X, y = data
    X = X.set_axis(np.arange(10_000, 10_000 + len(X)))  # row ids we can recognise
    for train, test in StratifiedKFold(3, shuffle=True, random_state=1).split(X, y):
        pipe = make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=0, **SMALL)
        spy = SpySampler(pipe.named_steps["sampler"])
        pipe.set_params(sampler=spy)
        pipe.fit(X.iloc[train], y[train])
        fitted_spy = pipe.named_steps["sampler"]
        assert sorted(fitted_spy.seen_index_) == sorted(X.index[train])
        assert not set(fitted_spy.seen_index_) & set(X.index[test])
        pipe.predict_proba(X.iloc[test])
        pipe.predict(X.iloc[test])
        assert fitted_spy.calls_ == 1  # predicting never resamples


def test_sampler_output_changes_the_training_rows_as_configured(data):
    X, y = data
    pre = make_pipeline("none", NUMERIC, CATEGORICAL, seed=0).named_steps["preprocess"]
    Xt = pre.fit_transform(X, y)
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    for strategy, expected in [("random_under", (n_pos, n_pos / 0.2)),
                               ("cluster_negatives", (n_pos, n_pos / 0.2)),
                               ("smote", (n_neg * 0.2, n_neg))]:
        sampler = make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=0).named_steps["sampler"]
        _, yr = sampler.fit_resample(Xt, y)
        assert int(yr.sum()) == pytest.approx(expected[0], abs=1), strategy
        assert int((yr == 0).sum()) == pytest.approx(expected[1], abs=1), strategy


def test_cluster_negatives_draws_real_rows_per_cluster_in_proportion():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    sizes = [600, 300, 100]
    neg = np.vstack([c + rng.normal(size=(s, 2)) for c, s in zip(centres, sizes)])
    pos = rng.normal(loc=10.0, size=(50, 2))
    X = pd.DataFrame(np.vstack([neg, pos]), columns=["age", "assets"])
    y = np.r_[np.zeros(len(neg), int), np.ones(len(pos), int)]
    sampler = ClusterNegativeSampler(sampling_strategy=0.5, n_clusters=3, random_state=4)
    Xr, yr = sampler.fit_resample(X, y)
    assert int(yr.sum()) == 50 and int((yr == 0).sum()) == 100  # all positives, 50 / 0.5 negatives
    assert sorted(sampler.cluster_kept_[0]) == [10, 30, 60]  # 600:300:100 -> 60:30:10
    assert sorted(sampler.cluster_sizes_[0]) == [100, 300, 600]
    # real rows, not centroids: every output row is an input row
    np.testing.assert_array_equal(Xr.to_numpy(), X.to_numpy()[sampler.sample_indices_])
    # and the kept negatives come from each true cluster in proportion
    kept_neg = sampler.sample_indices_[sampler.sample_indices_ < len(neg)]
    true_cluster = np.repeat([0, 1, 2], sizes)[kept_neg]
    assert np.bincount(true_cluster).tolist() == [60, 30, 10]
    # reproducible
    again = ClusterNegativeSampler(sampling_strategy=0.5, n_clusters=3, random_state=4)
    again.fit_resample(X, y)
    np.testing.assert_array_equal(again.sample_indices_, sampler.sample_indices_)


def test_cluster_negatives_profile_selects_source_columns(data):
    X, y = data
    pipe = make_pipeline("cluster_negatives", NUMERIC, CATEGORICAL, seed=0,
                         profile=["x2", "segment"], **SMALL)
    pipe.fit(X, y)
    cols = pipe.named_steps["sampler"].profile_columns_
    assert set(cols) == {"x2", "missingindicator_x2", "segment=a", "segment=b", "segment=c"}
    with pytest.raises(ValueError, match="profile"):
        make_pipeline("cluster_negatives", NUMERIC, CATEGORICAL, seed=0, profile=["nope"]).fit(X, y)


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Final step that remembers what it was fitted on."""

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array([0, 1])
        self.y_ = np.asarray(y)
        self.w_ = None if sample_weight is None else np.asarray(sample_weight)
        return self

    def predict_proba(self, X):
        return np.tile([0.5, 0.5], (len(X), 1))


def test_weights_follow_their_rows_through_under_sampling(data):
    X, y = data
    w = np.arange(1, len(y) + 1, dtype=float)  # every row's weight is unique
    pipe = make_pipeline("random_under", NUMERIC, CATEGORICAL, seed=0)
    pipe.set_params(estimator=RecordingClassifier())
    pipe.fit(X, y, sample_weight=w)
    idx = pipe.named_steps["sampler"].sample_indices_
    np.testing.assert_array_equal(pipe.named_steps["estimator"].w_, w[idx])
    np.testing.assert_array_equal(pipe.named_steps["estimator"].y_, y[idx])


def test_imblearn_style_weight_name_is_carried_too(data):
    X, y = data
    w = np.arange(1, len(y) + 1, dtype=float)
    pipe = make_pipeline("cluster_negatives", NUMERIC, CATEGORICAL, seed=0)
    pipe.set_params(estimator=RecordingClassifier())
    pipe.fit(X, y, estimator__sample_weight=w)
    idx = pipe.named_steps["sampler"].sample_indices_
    np.testing.assert_array_equal(pipe.named_steps["estimator"].w_, w[idx])
    with pytest.raises(ValueError, match="not both"):
        pipe.fit(X, y, sample_weight=w, estimator__sample_weight=w)


def test_weights_through_smote_keep_originals_and_average_synthetic(data):
    X, y = data
    w = np.where(y == 1, 2.0, 5.0)
    w[np.flatnonzero(y == 1)[:5]] = 4.0
    pipe = make_pipeline("smote", NUMERIC, CATEGORICAL, seed=0)
    pipe.set_params(estimator=RecordingClassifier())
    pipe.fit(X, y, sample_weight=w)
    got = pipe.named_steps["estimator"].w_
    n = len(y)
    np.testing.assert_array_equal(got[:n], w)
    assert len(got) > n
    np.testing.assert_allclose(got[n:], w[y == 1].mean())


def test_cluster_sampler_reweight_preserves_weighted_totals():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    y = (rng.random(500) < 0.1).astype(int)
    s = ClusterNegativeSampler(sampling_strategy=0.5, n_clusters=4, reweight=True, random_state=0)
    _, yr = s.fit_resample(X, y)
    w = carry_weights(s, np.ones(len(y)), y, yr)
    assert w[yr == 0].sum() == pytest.approx((y == 0).sum())
    assert w[yr == 1].sum() == pytest.approx(y.sum())


def test_carry_weights_refuses_unknown_samplers():
    class Odd:
        pass

    with pytest.raises(TypeError):
        carry_weights(Odd(), np.ones(4), np.array([0, 0, 1, 1]), np.array([1, 0]))


def test_class_weight_is_negative_over_positive_weight(data):
    X, y = data
    clf = BalancedLGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1)
    clf.fit(X[["x1"]], y)
    assert clf.pos_weight_ == pytest.approx((y == 0).sum() / y.sum())
    w = np.where(y == 0, 3.0, 1.0)  # negatives sampled 1 in 3
    clf.fit(X[["x1"]], y, sample_weight=w)
    assert clf.pos_weight_ == pytest.approx(3 * (y == 0).sum() / y.sum())


@pytest.mark.parametrize("strategy", ["none", "class_weight", "cluster_negatives", "balanced_rf", "dummy"])
def test_sample_weight_changes_the_fit_and_is_accepted(strategy, data):
    X, y = data
    X_tr, y_tr, X_te, _ = split(X, y)
    w = np.where(X_tr["segment"] == "a", 5.0, 1.0)
    plain = small(make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=0, **SMALL)).fit(X_tr, y_tr)
    weighted = small(make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=0, **SMALL)).fit(X_tr, y_tr, sample_weight=w)
    assert not np.allclose(plain.predict_proba(X_te)[:, 1], weighted.predict_proba(X_te)[:, 1])


def test_easy_ensemble_rejects_weights_loudly(data):
    X, y = data
    with pytest.raises(TypeError, match="sample_weight"):
        make_pipeline("easy_ensemble", NUMERIC, CATEGORICAL, seed=0).fit(X, y, sample_weight=np.ones(len(y)))


def test_calibration_brings_inflated_probabilities_back_to_the_base_rate():
    X, y = synthetic(n=6000, seed=5, rate=0.05)
    fit, cal, test = np.split(np.arange(len(y)), [3000, 4500])
    for strategy in ("class_weight", "random_under"):
        pipe = make_pipeline(strategy, NUMERIC, CATEGORICAL, seed=0).fit(X.iloc[fit], y[fit])
        raw = pipe.predict_proba(X.iloc[test])[:, 1]
        assert raw.mean() > 1.5 * y[test].mean()  # resampling / weights inflate probabilities
        calibrated = calibrate(pipe, X.iloc[cal], y[cal], method="sigmoid")
        p = calibrated.predict_proba(X.iloc[test])[:, 1]
        assert abs(p.mean() - y[test].mean()) < 0.02
        assert M.brier(y[test], p) < M.brier(y[test], raw)
        assert M.roc_auc(y[test], p) == pytest.approx(M.roc_auc(y[test], raw), abs=1e-3)  # monotone
        # the frozen pipeline was not refitted
        np.testing.assert_allclose(pipe.predict_proba(X.iloc[test])[:, 1], raw)


def test_calibration_out_of_fold_mode():
    X, y = synthetic(n=3000, seed=6, rate=0.05)
    pipe = make_pipeline("random_under", NUMERIC, CATEGORICAL, seed=0, **SMALL)
    cal = calibrate(pipe, X.iloc[:2000], y[:2000], cv=StratifiedKFold(3, shuffle=True, random_state=0))
    p = cal.predict_proba(X.iloc[2000:])[:, 1]
    assert abs(p.mean() - y[2000:].mean()) < 0.02


def test_popularity_baseline_by_hand():
    X = pd.DataFrame({"product": ["a"] * 4 + ["b"] * 6, "x": np.arange(10.0)})
    y = np.array([1, 1, 0, 0] + [0] * 6)
    clf = PopularityClassifier(prior_strength=2.0).fit(X[["product"]].to_numpy(), y)
    prior = 0.2
    p = clf.predict_proba(np.array([["a"], ["b"], ["zzz"]]))[:, 1]
    assert p[0] == pytest.approx((2 + 2 * prior) / (4 + 2))
    assert p[1] == pytest.approx((0 + 2 * prior) / (6 + 2))
    assert p[2] == pytest.approx(prior)  # unseen group
    pipe = make_pipeline("popularity", [], [], seed=0, popularity_by="product").fit(X, y)
    assert pipe.predict_proba(X)[:4, 1].min() > pipe.predict_proba(X)[4:, 1].max()


def test_registry_contract():
    assert "popularity" in GROUP_BASELINES and "popularity" not in STRATEGIES
    with pytest.raises(ValueError, match="popularity_by"):
        make_pipeline("popularity", NUMERIC, CATEGORICAL, seed=0)
    with pytest.raises(ValueError, match="unknown strategy"):
        make_pipeline("magic", NUMERIC, CATEGORICAL, seed=0)
    pipe = make_pipeline("class_weight", NUMERIC, CATEGORICAL, seed=11, num_leaves=7)
    est = pipe.named_steps["estimator"]
    assert est.num_leaves == 7 and est.random_state == 11 and est.n_estimators == 300


def test_fitted_pipeline_pickles_and_handles_unseen_levels(tmp_path, data):
    X, y = data
    pipe = make_pipeline("cluster_negatives", NUMERIC, CATEGORICAL, seed=0, **SMALL).fit(X, y)
    joblib.dump(pipe, tmp_path / "p.joblib")
    loaded = joblib.load(tmp_path / "p.joblib")
    new = X.head(5).copy()
    new["segment"] = ["zz", "a", "b", "c", None]  # an unseen level and a missing one
    np.testing.assert_allclose(loaded.predict_proba(new), pipe.predict_proba(new))


def test_samplers_used_are_the_imblearn_ones():
    pipe = make_pipeline("random_under", NUMERIC, CATEGORICAL, seed=9)
    assert isinstance(pipe.named_steps["sampler"], RandomUnderSampler)
    assert pipe.named_steps["sampler"].random_state == 9
    assert isinstance(make_pipeline("smote", NUMERIC, CATEGORICAL, seed=9).named_steps["sampler"], SMOTE)
