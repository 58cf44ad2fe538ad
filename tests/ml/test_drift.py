"""Input drift: PSI per feature between a training profile and tonight's snapshot."""
from __future__ import annotations

import numpy as np

from ml.features import drift

FEATURES = ("age", "log_assets", "risk_tolerance", "days_since_salary_credit")


def _snapshot(rng: np.random.Generator, n: int = 20_000, age_shift: float = 0.0) -> np.ndarray:
    age = rng.normal(45 + age_shift, 12, n)
    assets = rng.normal(11, 1.5, n)
    risk = rng.integers(1, 6, n).astype(float)
    days = np.where(rng.random(n) < 0.3, np.nan, rng.exponential(40, n))
    return np.column_stack([age, assets, risk, days])


def test_the_same_population_is_stable():
    rng = np.random.default_rng(1)
    reference = drift.profile(_snapshot(rng), FEATURES, "2025-01-01")
    report = drift.compare(reference, _snapshot(rng), FEATURES, threshold=0.25)
    assert not report["flagged"] and report["drifted"] == []
    assert report["max_psi"] < 0.01
    assert reference["features"]["risk_tolerance"]["kind"] == "values"  # five levels, binned by value


def test_a_planted_shift_flags_the_run_and_names_the_feature():
    rng = np.random.default_rng(2)
    reference = drift.profile(_snapshot(rng), FEATURES, "2025-01-01")
    tonight = _snapshot(rng, age_shift=10.0)  # everyone ten years older
    tonight[: len(tonight) // 2, 3] = np.nan  # and half of the salary dates missing
    report = drift.compare(reference, tonight, FEATURES, threshold=0.25, snapshot="2025-07-01")
    assert report["flagged"]
    assert set(report["drifted"]) == {"age", "days_since_salary_credit"}
    assert report["psi"]["age"] > 0.25 and report["psi"]["log_assets"] < 0.01
    assert drift.compare(reference, tonight, FEATURES, threshold=10.0)["flagged"] is False  # the threshold is the knob


def test_unseen_values_and_an_empty_bin_stay_finite():
    rng = np.random.default_rng(3)
    reference = drift.profile(_snapshot(rng), FEATURES)
    tonight = _snapshot(rng)
    tonight[:, 2] = 7.0  # a risk level training never saw
    report = drift.compare(reference, tonight, FEATURES)
    assert np.isfinite(report["psi"]["risk_tolerance"]) and "risk_tolerance" in report["drifted"]
