"""ml.imbalance.fit_table and ml.imbalance.tabular: reading, target mapping, down-sampling, end-to-end on UCI data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.imbalance import fit_table, tabular

# UCI Bank Marketing, vendored with its attribution (tests/data/uci-bank-marketing/README.md)
UCI = Path(__file__).resolve().parents[1] / "data" / "uci-bank-marketing" / "bank-additional-full.csv.gz"

# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path, delimiter):
    frame = pd.DataFrame({"age": [30, 41, 52], "job": ["a b", "c", "d"], "y": ["yes", "no", "no"]})
    path = tmp_path / "t.csv"
    frame.to_csv(path, sep=delimiter, index=False)
    df, info = tabular.read_table(path)
    assert info == {"format": "csv", "delimiter": delimiter}
    assert list(df.columns) == ["age", "job", "y"]
    assert df["age"].tolist() == [30, 41, 52]


def test_sniffer_fallback_and_quoted_header():
    assert tabular.sniff_delimiter('"a";"b";"c"\n1;2;"x"\n3;4;"y"\n') == ";"
    assert tabular.sniff_delimiter("only\n1\n2\n") == ","  # one column: default


def test_parquet_is_read(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [True, False]})
    frame.to_parquet(tmp_path / "t.parquet")
    df, info = tabular.read_table(tmp_path / "t.parquet")
    assert info["format"] == "parquet"
    pd.testing.assert_frame_equal(df, frame)


# --------------------------------------------------------------------------------------------
# target
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, positive", [
    (["yes", "no", "no", "yes"], "yes"),
    (["Y", "N", "N", "Y"], "Y"),
    ([1, 0, 0, 1], "1"),
    ([True, False, False, True], "True"),
    (["true", "false", "false", "true"], "true"),
    ([1.0, 0.0, 0.0, 1.0], "1.0"),
])
def test_target_spellings_map_to_one_zero(values, positive):
    y, pos, neg = tabular.binarize_target(pd.Series(values))
    assert y.tolist() == [1, 0, 0, 1]
    assert pos == positive


def test_target_needs_a_named_positive_when_ambiguous():
    with pytest.raises(ValueError, match="positive"):
        tabular.binarize_target(pd.Series(["churn", "stay", "stay"]))
    y, pos, neg = tabular.binarize_target(pd.Series(["churn", "stay", "stay"]), positive="churn")
    assert y.tolist() == [1, 0, 0] and (pos, neg) == ("churn", "stay")
    with pytest.raises(ValueError, match="two values"):
        tabular.binarize_target(pd.Series(["a", "b", "c"]))


# --------------------------------------------------------------------------------------------
# positive-rate down-sampling
# --------------------------------------------------------------------------------------------


def test_downsampling_positives_is_reproducible_and_exact():
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.12).astype(int)
    n_neg = int((y == 0).sum())
    a = tabular.downsample_positives(y, 0.02, seed=7)
    b = tabular.downsample_positives(y, 0.02, seed=7)
    c = tabular.downsample_positives(y, 0.02, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.diff(a) > 0)  # file order kept
    kept = y[a]
    assert int((kept == 0).sum()) == n_neg  # every negative kept
    assert int(kept.sum()) == round(0.02 / 0.98 * n_neg)
    assert kept.mean() == pytest.approx(0.02, abs=0.0005)
    with pytest.raises(ValueError, match="only removes positives"):
        tabular.downsample_positives(y, 0.5, seed=7)


def test_columns_are_split_and_identifiers_set_aside():
    n = 300
    df = pd.DataFrame({
        "id": [f"C{i:05d}" for i in range(n)],
        "const": 1,
        "age": np.arange(n) % 70,
        "flag": np.arange(n) % 2 == 0,
        "job": np.where(np.arange(n) % 3 == 0, "a", "b"),
    })
    cols = tabular.split_columns(df)
    assert cols.numeric == ["age", "flag"]
    assert cols.categorical == ["job"]
    assert set(cols.excluded) == {"id", "const"}


def test_uci_recipe_on_a_tiny_ordered_frame():
    df = pd.DataFrame({
        "month": ["may", "may", "may", "jun", "dec", "mar", "mar"],
        "day_of_week": ["mon", "mon", "tue", "mon", "fri", "mon", "mon"],
        "euribor3m": [4.8, 4.8, 4.7, 4.6, 1.0, 1.2, 1.2],
        "pdays": [999, 3, 999, 999, 6, 999, 999],
    })
    out, notes = tabular.uci_bank_features(df)
    assert out["year"].tolist() == [2008, 2008, 2008, 2008, 2008, 2009, 2009]
    assert out["month_idx"].tolist() == [5, 5, 5, 6, 12, 15, 15]
    assert out["day_idx"].tolist() == [1, 1, 2, 3, 4, 5, 5]
    assert out["never_contacted"].tolist() == [1, 0, 1, 1, 0, 1, 1]
    assert out["pdays"].isna().tolist() == [True, False, True, True, False, True, True]
    assert not {"day_calls", "month_calls"} & set(out.columns) and "day_idx" in notes
    # nothing is computed from later rows: the first rows' features are the same without the rest
    for keep in range(1, len(df)):
        head, _ = tabular.uci_bank_features(df.iloc[:keep])
        pd.testing.assert_frame_equal(head, out.iloc[:keep])


# --------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------

REQUIRED = ("roc_auc", "pr_auc", "capture_at_50", "lift_at_10")


def test_end_to_end_on_a_synthetic_parquet_with_time_order(tmp_path):
    rng = np.random.default_rng(3)
    n = 1500
    frame = pd.DataFrame({
        "when": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
        "x": rng.normal(size=n),
        "grade": rng.choice(["A", "B", "C"], size=n),
        "customer": [f"id{i}" for i in range(n)],
    })
    frame["bought"] = np.where(rng.random(n) < 1 / (1 + np.exp(-(2 * frame["x"] - 3))), "true", "false")
    frame = frame.sample(frac=1.0, random_state=0)  # file order is not time order
    frame.to_parquet(tmp_path / "d.parquet")
    out = fit_table.main(["--data", str(tmp_path / "d.parquet"), "--target", "bought", "--time-order", "when",
                          "--strategies", "dummy,none", "--lgbm", '{"n_estimators": 60}',
                          "--jobs", "1", "--no-charts", "--report", str(tmp_path / "r")])
    d = out["data"]
    assert d["positive_label"] == "true"
    assert d["columns_used"] == {"numeric": ["x"], "categorical": ["grade"]}
    assert d["columns_dropped"]["when"].startswith("--time-order")
    assert "identifier" in d["columns_dropped"]["customer"]
    assert out["cv"]["strategy"] == out["time_split"]["strategy"] == "none"
    assert out["cv"]["roc_auc"] > 0.75
    assert out["strategies"]["dummy"]["cv"]["roc_auc"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def uci_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uci")
    full = pd.read_csv(UCI, sep=";")
    sample = full.iloc[::10].head(4000)  # every 10th call, date order kept, ~11% positives
    path = tmp / "bank-sample.csv"
    sample.to_csv(path, sep=";", index=False)
    report = tmp / "report"
    out = fit_table.main(["--data", str(path), "--target", "y", "--drop", "duration",
                          "--positive-rate", "0.05", "--seed", "7",
                          "--strategies", "dummy,none,random_under", "--lgbm", '{"n_estimators": 150}',
                          "--jobs", "2", "--report", str(report)])
    return out, report, sample


def test_uci_sample_writes_metrics_with_the_required_keys(uci_run):
    out, report, sample = uci_run
    saved = json.loads((report / "metrics.json").read_text())
    for block in ("cv", "time_split"):
        for key in REQUIRED:
            assert isinstance(saved[block][key], float), (block, key)
        assert saved[block]["strategy"] == saved["selection"]["chosen"]
    assert set(saved["strategies"]) == {"dummy", "none", "random_under"}
    assert saved["protocol"]["lgbm_params"]["n_estimators"] == 150
    for row in saved["strategies"].values():
        for key in REQUIRED:
            assert key in row["cv"] and key in row["time_split"]
    assert {"seeds", "timing", "data", "protocol"} <= set(saved)
    assert (report / "report.md").read_text().count("| dummy") == 1
    assert (report / "cumulative_gains.png").stat().st_size > 10_000


def test_uci_sample_data_description_and_downsampling(uci_run):
    out, _, sample = uci_run
    d = out["data"]
    n_neg = int((sample["y"] == "no").sum())
    assert d["delimiter"] == ";"
    assert d["positive_label"] == "yes"
    assert d["rows_in_file"] == 4000
    assert d["positives"] == round(0.05 / 0.95 * n_neg)
    assert d["rows"] == n_neg + d["positives"]
    assert "duration" in d["columns_dropped"]
    assert "duration" not in d["columns_used"]["numeric"]
    assert d["recipe"]["name"] == "uci-bank"
    assert out["time_split"]["test_rows"] == d["rows"] - round(0.8 * d["rows"])


def test_uci_sample_choice_and_sanity(uci_run):
    out, _, _ = uci_run
    sel = out["selection"]["scores"]
    assert out["selection"]["chosen"] == max(sel, key=sel.get)  # best selection-CV PR-AUC
    dummy = out["strategies"]["dummy"]
    assert dummy["cv"]["roc_auc"] == pytest.approx(0.5)
    assert dummy["cv"]["lift_at_10"] == pytest.approx(1.0)
    none = out["strategies"]["none"]
    assert none["cv"]["roc_auc"] > 0.65  # real signal on 4,000 calls
    assert none["cv"]["lift_at_10"] > 1.5
    # the calibrated time-split model predicts near the training base rate, not the resampled one
    assert out["time_split"]["calibrated"]["mean_predicted"] < 0.2


def test_positive_rate_downsampling_is_reproducible_on_uci(tmp_path):
    sample = pd.read_csv(UCI, sep=";").iloc[::20]
    path = tmp_path / "s.csv"
    sample.to_csv(path, sep=";", index=False)
    a = fit_table.load_dataset(path, "y", drop=["duration"], positive_rate=0.03, seed=5)
    b = fit_table.load_dataset(path, "y", drop=["duration"], positive_rate=0.03, seed=5)
    c = fit_table.load_dataset(path, "y", drop=["duration"], positive_rate=0.03, seed=6)
    pd.testing.assert_frame_equal(a.X, b.X)
    assert a.y.tolist() == b.y.tolist()
    assert not a.X.equals(c.X)
    assert a.description["positive_rate"] == pytest.approx(0.03, abs=0.002)
