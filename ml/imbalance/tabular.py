"""Reading and preparing any flat labelled table (CSV or Parquet) for ``ml.imbalance.fit_table``.

Kept apart from the CLI so the steps can be tested one by one:

* :func:`read_table` -- CSV (delimiter detected with ``csv.Sniffer``) or Parquet.
* :func:`binarize_target` -- yes/no, 1/0, true/false ... to 1/0, with the positive class named.
* :func:`downsample_positives` -- keep every negative and a seeded random subset of positives
  so that positives make up a given share of the rows (done once, before any split).
* :func:`split_columns` -- numeric vs categorical feature columns; identifier-like and
  constant columns are set aside (and reported), never silently used.
* :func:`apply_recipe` -- documented, label-free feature engineering for known public schemas
  (currently the UCI Bank Marketing "bank-additional" file).
"""
from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE_TOKENS = {"1", "1.0", "yes", "y", "true", "t", "positive", "pos"}

NEGATIVE_TOKENS = {"0", "0.0", "no", "n", "false", "f", "negative", "neg"}

CANDIDATE_DELIMITERS = ",;\t|"

_LGBM_FORBIDDEN = re.compile(r'[",:\[\]{}]')


def sniff_delimiter(sample: str) -> str:
    """Detect the delimiter of a CSV sample (``,`` ``;`` tab ``|``); ``,`` if unsure.

    ``csv.Sniffer`` first; if it fails (e.g. a one-column file) the candidate that splits the
    header line into the most fields and is consistent over the sample lines wins.
    """
    try:
        return csv.Sniffer().sniff(sample, delimiters=CANDIDATE_DELIMITERS).delimiter
    except csv.Error:
        lines = [ln for ln in sample.splitlines() if ln.strip()][:20]
        best, best_fields = ",", 1
        for d in CANDIDATE_DELIMITERS:
            counts = {len(next(csv.reader([ln], delimiter=d))) for ln in lines}
            if len(counts) == 1 and (n := counts.pop()) > best_fields:
                best, best_fields = d, n
        return best


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a CSV (any common delimiter, optionally gzipped) or Parquet file; returns the frame and a description."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    if path.suffix.lower() in {".parquet", ".pq"} or path.is_dir():
        return pd.read_parquet(path), {"format": "parquet"}
    opener = gzip.open if path.suffix.lower() == ".gz" else open  # e.g. the vendored UCI file
    with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(64 * 1024)
    delimiter = sniff_delimiter(sample)
    df = pd.read_csv(path, sep=delimiter, encoding="utf-8-sig", low_memory=False)
    return df, {"format": "csv", "delimiter": delimiter}


def binarize_target(values: pd.Series, positive: str | None = None) -> tuple[np.ndarray, str, str]:
    """Map a two-valued target to 1/0.

    Returns ``(y, positive_label, negative_label)``. Recognised spellings (case-insensitive):
    ``yes/no``, ``y/n``, ``true/false``, ``t/f``, ``1/0``, ``positive/negative``. Anything else
    needs ``positive=`` naming the positive value. Missing targets are an error (drop them
    first) so that no row is quietly lost.
    """
    if values.isna().any():
        raise ValueError(f"target has {int(values.isna().sum())} missing values")
    text = values.astype(str).str.strip()
    norm = text.str.lower()
    distinct = sorted(norm.unique())
    if len(distinct) != 2:
        raise ValueError(f"target must have exactly two values, found {len(distinct)}: {distinct[:10]}")
    if positive is not None:
        pos = str(positive).strip().lower()
        if pos not in distinct:
            raise ValueError(f"positive value {positive!r} not among target values {distinct}")
    else:
        pos_candidates = [v for v in distinct if v in POSITIVE_TOKENS]
        neg_candidates = [v for v in distinct if v in NEGATIVE_TOKENS]
        if len(pos_candidates) != 1 or len(neg_candidates) != 1:
            raise ValueError(
                f"cannot tell the positive class of target values {distinct}; pass --positive-label"
            )
        pos = pos_candidates[0]
    y = (norm == pos).to_numpy().astype(np.int8)
    pos_label = text[norm == pos].iloc[0]
    neg_label = text[norm != pos].iloc[0]
    return y, pos_label, neg_label


def downsample_positives(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Row indices (sorted, so file order survives) keeping every negative and enough positives
    for them to make up ``rate`` of the rows: ``round(rate / (1 - rate) * n_negatives)``.

    Uses ``numpy.random.default_rng(seed)``: the same ``y``, ``rate`` and ``seed`` give the same
    rows. Raises if the file already has fewer positives than asked for.
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"positive rate must be in (0, 1), got {rate}")
    y = np.asarray(y)
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    n_keep = int(round(rate / (1.0 - rate) * len(neg)))
    if n_keep > len(pos):
        raise ValueError(
            f"asked for a positive rate of {rate:.4f} but the data has {len(pos)} positives "
            f"({len(pos) / len(y):.4f}); this option only removes positives"
        )
    if n_keep < 1:
        raise ValueError(f"positive rate {rate} would keep no positive")
    rng = np.random.default_rng(seed)
    kept = rng.choice(pos, size=n_keep, replace=False)
    return np.sort(np.concatenate([neg, kept]))


@dataclass
class Columns:
    """Feature columns by kind, and the ones set aside with the reason."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def used(self) -> list[str]:
        return self.numeric + self.categorical


def split_columns(df: pd.DataFrame, *, max_id_unique_share: float = 0.5) -> Columns:
    """Numeric (numbers, booleans) vs categorical (everything else) columns.

    Excluded, with the reason recorded: constant columns, and text columns whose values are
    mostly unique (identifiers: ``> max_id_unique_share`` of the rows and more than 100
    values), which would only let a model memorise rows.
    """
    cols = Columns()
    n = len(df)
    for c in df.columns:
        s = df[c]
        nunique = s.nunique(dropna=True)
        if nunique <= 1:
            cols.excluded[c] = "constant"
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            cols.numeric.append(c)
        elif nunique > 100 and nunique > max_id_unique_share * n:
            cols.excluded[c] = f"identifier-like ({nunique} distinct values)"
        else:
            cols.categorical.append(c)
    return cols


def prepare_features(df: pd.DataFrame, cols: Columns) -> pd.DataFrame:
    """The feature frame: numeric columns as float, categorical ones as text (missing kept)."""
    out = pd.DataFrame(index=df.index)
    for c in cols.numeric:
        out[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in cols.categorical:
        s = df[c]
        out[c] = s.where(s.isna(), s.astype(str)).astype(object)
    return out


def safe_names(names: list[str]) -> dict[str, str]:
    """Rename map for column names LightGBM rejects (JSON special characters), kept unique."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        new = _LGBM_FORBIDDEN.sub("_", str(name))
        base, i = new, 1
        while new in seen:
            i += 1
            new = f"{base}_{i}"
        seen.add(new)
        out[name] = new
    return out

UCI_BANK_COLUMNS = {
    "age", "job", "marital", "education", "default", "housing", "loan", "contact", "month",
    "day_of_week", "campaign", "pdays", "previous", "poutcome", "emp.var.rate",
    "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed",
}

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def detect_recipe(df: pd.DataFrame) -> str | None:
    """``"uci-bank"`` when the frame has the UCI bank-additional columns, else ``None``."""
    return "uci-bank" if UCI_BANK_COLUMNS <= set(df.columns) else None


def uci_bank_features(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Label-free features for the UCI Bank Marketing (bank-additional) file.

    The file lists calls in date order (May 2008 .. Nov 2010) but gives only month and weekday.
    Each feature uses the row's own columns and, for the calendar, the rows before it in the file
    (the calls already placed): never an outcome and never a later row, so in the time split no
    test row contributes to any training row's features, nor to an earlier test row's:

    * ``pdays`` 999 ("never contacted") becomes missing, with a ``never_contacted`` flag;
    * ``year`` (the month number wraps around in file order) and ``month_idx`` (months since
      Jan 2008): the call date at month resolution;
    * ``day_idx``: the call day as a running number (a new day starts when year, month,
      weekday or the daily ``euribor3m`` quote changes).

    Counts of the calls placed the same day or month are deliberately absent: counted over the
    file they use the test rows' existence (and the rest of the day, still in the future), and
    counted over training rows only they are zero on every test day.

    Must be applied to the file in its original row order.
    """
    out = df.copy()
    month = out["month"].astype(str).str.lower().map({m: i for i, m in enumerate(_MONTHS, 1)})
    if month.isna().any():
        raise ValueError("uci-bank recipe: unknown month values")
    m = month.to_numpy(dtype=int)
    year = 2008 + np.concatenate([[0], np.cumsum(np.diff(m) < 0)])
    out["year"] = year
    out["month_idx"] = (year - 2008) * 12 + m
    day_key = (
        pd.Series(year, index=out.index).astype(str) + "|" + month.astype(str) + "|"
        + out["day_of_week"].astype(str) + "|" + out["euribor3m"].astype(str)
    )
    new_day = np.r_[True, day_key.to_numpy()[1:] != day_key.to_numpy()[:-1]]
    out["day_idx"] = np.cumsum(new_day)
    pdays = pd.to_numeric(out["pdays"], errors="coerce")
    out["never_contacted"] = (pdays == 999).astype(int)
    out["pdays"] = pdays.where(pdays != 999)
    notes = {
        "pdays": "999 (never contacted) -> missing, plus never_contacted flag",
        "year, month_idx": "call date at month resolution, from the file's date order",
        "day_idx": "call day (running number), from the file's date order",
    }
    return out, notes

RECIPES = {"uci-bank": uci_bank_features}


def apply_recipe(df: pd.DataFrame, recipe: str) -> tuple[pd.DataFrame, str | None, dict[str, str]]:
    """Apply ``recipe`` (``auto``, ``none`` or a name in :data:`RECIPES`).

    Returns the frame, the recipe actually applied (or ``None``) and notes on added features.
    """
    if recipe == "none":
        return df, None, {}
    name = detect_recipe(df) if recipe == "auto" else recipe
    if name is None:
        return df, None, {}
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from auto, none, {', '.join(RECIPES)}")
    out, notes = RECIPES[name](df)
    return out, name, notes
