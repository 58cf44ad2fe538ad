"""Column preprocessing of the candidates: imputation, scaling and encodings by column kind."""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

_LGBM_FORBIDDEN = re.compile(r'[",:\[\]{}]')


def _as_text(X):
    """Categorical input as text (mixed numbers/strings break OneHotEncoder); missing values
    (None, NaN, NaT) become the level ``"missing"``."""
    frame = pd.DataFrame(X).copy()
    for c in frame.columns:
        col = frame[c]
        frame[c] = col.astype(str).where(col.notna(), "missing").astype(object)
    return frame


def _onehot_name(feature: str, category) -> str:
    return _LGBM_FORBIDDEN.sub("_", f"{feature}={category}")


def make_preprocess(
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    max_categories: int = 32,
    min_frequency: float = 0.001,
) -> ColumnTransformer:
    """The shared preprocessing: a ColumnTransformer with pandas output (see module doc)."""
    parts = []
    if numeric:
        parts.append((
            "num",
            SkPipeline([
                ("impute", SimpleImputer(strategy="median", add_indicator=True)),
                ("scale", StandardScaler()),
            ]),
            list(numeric),
        ))
    if categorical:
        parts.append((
            "cat",
            SkPipeline([
                ("text", FunctionTransformer(_as_text, feature_names_out="one-to-one")),
                ("onehot", OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=min_frequency,
                    max_categories=max_categories,
                    sparse_output=False,
                    dtype=np.float32,
                    feature_name_combiner=_onehot_name,
                )),
            ]),
            list(categorical),
        ))
    if not parts:
        raise ValueError("need at least one numeric or categorical column")
    ct = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    return ct.set_output(transform="pandas")
