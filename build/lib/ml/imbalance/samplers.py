"""Samplers beyond imbalanced-learn's: cluster-based negative down-sampling that keeps weights."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from imblearn.under_sampling.base import BaseUnderSampler
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits


class ClusterNegativeSampler(BaseUnderSampler):
    """Clustering-based negative sampling over customer profiles.

    k-means (``n_clusters``) groups the majority-class rows by their profile features; the
    sampler then keeps *real* majority rows drawn at random within each cluster, in proportion
    to the cluster's size (largest-remainder rounding, so the total is exact). Every profile
    segment stays represented in the sample -- stratified rather than simple random sampling --
    unlike ``ClusterCentroids``, which replaces negatives by synthetic centroids. All minority
    rows are kept. Being an imblearn sampler it only runs inside ``Pipeline.fit``.

    Parameters
    ----------
    sampling_strategy : float or str
        As in imblearn: a float is the minority/majority row ratio after sampling.
    n_clusters : int
        Number of k-means profile clusters.
    profile : list of str, optional
        Source columns that describe the profile (``["age", "asset_level"]``); a one-hot column
        ``asset_level=L3`` or an indicator ``missingindicator_age`` belongs to its source. ``None``
        uses every input column.
    max_fit_rows : int
        k-means is fitted on at most this many majority rows (seeded subsample), then every
        majority row is assigned to its nearest centre -- linear in the row count.
    reweight : bool
        If True, ``carry_weights`` multiplies each kept majority row's weight by
        cluster size / kept in cluster, so weighted class totals are preserved.
    random_state : int
        Seed for k-means and the draws.

    Fitted attributes: ``sample_indices_``, ``cluster_sizes_``, ``cluster_kept_``,
    ``weight_factors_`` (per output row), ``profile_columns_``, ``kmeans_``.
    """

    _parameter_constraints: dict = {
        **BaseUnderSampler._parameter_constraints,
        "n_clusters": [int],
        "profile": [list, tuple, None],
        "max_fit_rows": [int],
        "reweight": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        sampling_strategy="auto",
        n_clusters: int = 8,
        profile: Sequence[str] | None = None,
        max_fit_rows: int = 20_000,
        reweight: bool = False,
        random_state=None,
    ):
        super().__init__(sampling_strategy=sampling_strategy)
        self.n_clusters = n_clusters
        self.profile = profile
        self.max_fit_rows = max_fit_rows
        self.reweight = reweight
        self.random_state = random_state

    def _profile_mask(self, n_features: int) -> np.ndarray:
        names = getattr(self, "feature_names_in_", None)
        if self.profile is None:
            return np.ones(n_features, dtype=bool)
        if names is None:
            raise ValueError("profile= needs a DataFrame input with column names")
        wanted = set(self.profile)

        def source(name: str) -> str:
            name = name.removeprefix("missingindicator_")
            return name.split("=", 1)[0]

        mask = np.array([source(str(n)) in wanted for n in names])
        if not mask.any():
            raise ValueError(f"no input column belongs to profile {sorted(wanted)}")
        return mask

    def _fit_resample(self, X, y):
        rng = np.random.default_rng(self.random_state)
        seed = int(rng.integers(2**31 - 1))
        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        cols = self._profile_mask(X.shape[1])
        self.profile_columns_ = (
            [str(n) for n, keep in zip(self.feature_names_in_, cols) if keep]
            if hasattr(self, "feature_names_in_") else np.flatnonzero(cols).tolist()
        )
        keep_idx = []
        factors = np.ones(len(y))
        self.cluster_sizes_, self.cluster_kept_ = {}, {}
        for cls in np.unique(y):
            idx = np.flatnonzero(y == cls)
            if cls not in self.sampling_strategy_:
                keep_idx.append(idx)
                continue
            n_keep = int(self.sampling_strategy_[cls])
            Z = X[np.ix_(idx, np.flatnonzero(cols))]
            k = max(1, min(self.n_clusters, len(idx)))
            sub = (np.arange(len(idx)) if len(idx) <= self.max_fit_rows
                   else rng.choice(len(idx), self.max_fit_rows, replace=False))
            # single-threaded: on <= max_fit_rows rows OpenMP start-up costs more than it saves
            with threadpool_limits(limits=1, user_api="openmp"):
                km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(Z[sub])
                labels = km.predict(Z)
            self.kmeans_ = km
            sizes = np.bincount(labels, minlength=k)
            quota = n_keep * sizes / sizes.sum()
            kept = np.floor(quota).astype(int)
            short = n_keep - kept.sum()
            if short > 0:  # largest remainders first, ties by cluster number
                order = np.lexsort((np.arange(k), -(quota - kept)))
                kept[order[:short]] += 1
            kept = np.minimum(kept, sizes)
            for c in range(k):
                members = idx[labels == c]
                chosen = rng.choice(members, size=kept[c], replace=False)
                keep_idx.append(chosen)
                if kept[c] > 0:
                    factors[chosen] = sizes[c] / kept[c]
            self.cluster_sizes_[cls] = sizes.tolist()
            self.cluster_kept_[cls] = kept.tolist()
        sample = np.sort(np.concatenate(keep_idx))
        self.sample_indices_ = sample
        self.weight_factors_ = factors[sample] if self.reweight else np.ones(len(sample))
        return X[sample], y[sample]


def carry_weights(sampler, sample_weight: np.ndarray, y_in: np.ndarray, y_out: np.ndarray) -> np.ndarray:
    """Weights for the rows a fitted sampler returned (rules in the module docstring)."""
    w = np.asarray(sample_weight, dtype=float)
    y_in = np.asarray(y_in)
    y_out = np.asarray(y_out)
    if hasattr(sampler, "sample_indices_"):
        out = w[sampler.sample_indices_]
        factors = getattr(sampler, "weight_factors_", None)
        return out * factors if factors is not None else out
    n_in, n_out = len(y_in), len(y_out)
    if n_out >= n_in and np.array_equal(y_out[:n_in], y_in):
        new = y_out[n_in:]
        fill = np.empty(len(new))
        for cls in np.unique(new):
            fill[new == cls] = w[y_in == cls].mean()
        return np.concatenate([w, fill])
    raise TypeError(
        f"cannot carry sample weights through {type(sampler).__name__}: it neither exposes "
        "sample_indices_ nor appends synthetic rows after the originals"
    )
