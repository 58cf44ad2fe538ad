"""Pairwise product statistics and substitute / complement / neutral labels.

For every unordered product pair (a, b), a before b in catalogue order, the table holds:

* co-holding: support, lift, P(b|a), P(a|b), Jaccard, and a *breadth-adjusted* log odds ratio
  (Mantel-Haenszel over strata of "how many other products the customer holds", so that two
  products are not related merely because both are held by customers who hold a lot);
* co-adoption, when ``opened_at`` is known: among customers who opened a (with a full window of
  follow-up, without b at the time), how many opened b within ``window_days``, against the count
  expected from b's opening rate over the same calendar windows; and which co-holder came first;
* product attributes from the catalogue (same category, risk distance, target-age overlap, tag
  overlap, and their blend ``attribute_similarity``); NaN for products outside the catalogue.

Labelling, with statistical care:

1. Products aimed at the same customers are co-held more whether they relate or not (a taste
   for funds, age, wealth). So each association is compared with what the pair's attributes
   predict — a robust regression over all pairs on category pair and age overlap — and with the
   scatter unrelated pairs show around that prediction (a random-effects view: a pair is special
   only if it stands out from that scatter, not merely from its sampling noise). Pairs with a
   product outside the catalogue are judged on the raw association.
2. Every test of the run (co-holding, co-adoption both ways) goes through one Benjamini-Hochberg
   correction at ``fdr``.
3. Pairs where a product has fewer than ``min_holders`` holders, or is held by more than
   ``max_prevalence`` of customers (demand savings: co-holding says nothing), stay neutral.

* complement — significantly more co-holding or co-adoption than expected, raw lift at least
  ``complement_min_lift``, and not near-identical products;
* substitute — significantly less co-holding than expected (with ``min_expected`` expected
  co-holders) between products in the same role: the same category, or across categories a
  shared tag and ``attribute_similarity >= substitute_cross_similarity`` (annuity insurance vs
  pension plan: both "retirement"). Note the raw lift of substitutes can
  exceed 1 when their category is popular with the same customers: "customers pick one of the
  two" shows as co-holding well below what products of that kind usually have. Outside the
  catalogue a deficit must be strong on its own (odds ratio upper bound
  <= ``substitute_max_odds_unknown``);
* neutral — everything else.

``strength`` in [0, 1] takes the cautious end of the 95% interval of the excess odds ratio:
1 - 1/lower bound for complements, 1 - upper bound for substitutes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from ml.core.catalogue import Catalogue, Product, load_catalogue
from ml.relations.statistics import (
    _Z95,
    _benjamini_hochberg,
    _breadth_adjusted_log_or,
    _coadoption,
    _gram,
    _huber,
)

RELATIONS_VERSION = "1"

LABELS = ("complement", "substitute", "neutral")


@dataclass(frozen=True)
class RelationParams:
    fdr: float = 0.05                        # Benjamini-Hochberg rate over all tests of a run
    min_holders: int = 20                    # fewer holders of either product: neutral
    min_expected: float = 5.0                # expected co-holders needed before a deficit counts
    min_coadoptions: int = 5                 # observed co-adoptions needed before an excess counts
    complement_min_lift: float = 1.5
    complement_max_similarity: float = 0.9   # near-identical products are not complements
    substitute_cross_similarity: float = 0.4  # across categories: a shared tag and this similarity
    substitute_max_odds_unknown: float = 0.5
    max_prevalence: float = 0.5              # products held by more customers say nothing: neutral
    min_group_pairs: int = 3                 # supported pairs needed for a category pair's own level
    window_days: int = 90
    strata_cap: int = 3                      # breadth strata: 0, 1, 2, 3+ other products held


# ------------------------------------------------------------------------------------------------
# Attributes
# ------------------------------------------------------------------------------------------------
def attribute_similarity(a: Product, b: Product) -> dict[str, float]:
    """Attribute comparison of two products; ``similarity`` in [0, 1].

    similarity = 0.4 * same category + 0.2 * (1 - risk distance / 4) + 0.2 * overlap of the
    target-age ranges (intersection over union) + 0.2 * Jaccard overlap of the tags.
    """
    same = float(a.category == b.category)
    risk_distance = abs(a.risk_level - b.risk_level)
    inter = min(a.target_age_max, b.target_age_max) - max(a.target_age_min, b.target_age_min)
    union = max(a.target_age_max, b.target_age_max) - min(a.target_age_min, b.target_age_min)
    age_overlap = max(inter, 0) / union if union > 0 else 1.0
    tags_a, tags_b = set(a.tags), set(b.tags)
    tag_overlap = len(tags_a & tags_b) / len(tags_a | tags_b) if tags_a | tags_b else 0.0
    similarity = 0.4 * same + 0.2 * (1 - risk_distance / 4) + 0.2 * age_overlap + 0.2 * tag_overlap
    return {"same_category": same, "risk_distance": float(risk_distance), "age_overlap": age_overlap,
            "tag_overlap": tag_overlap, "attribute_similarity": similarity}


# ------------------------------------------------------------------------------------------------
# Holdings -> matrices
# ------------------------------------------------------------------------------------------------
def product_order(holdings: pd.DataFrame, catalogue: Catalogue) -> tuple[str, ...]:
    """Catalogue products first (catalogue order), then any other products, sorted."""
    seen = set(holdings["product_id"].dropna().astype(str).unique())
    return catalogue.ids + tuple(sorted(seen - set(catalogue.ids)))


def holding_matrices(holdings: pd.DataFrame, product_ids: tuple[str, ...]
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Boolean customers x products matrix and, if ``opened_at`` exists, first-open day numbers.

    Customers are sorted by id so results do not depend on the input's row order.
    """
    h = holdings.dropna(subset=["customer_id", "product_id"])
    cust, _ = pd.factorize(h["customer_id"].astype(str), sort=True)
    prod = pd.Index(product_ids).get_indexer(h["product_id"].astype(str))
    held = np.zeros((int(cust.max(initial=-1)) + 1, len(product_ids)), dtype=bool)
    held[cust, prod] = True
    if "opened_at" not in h:
        return held, None
    days = (pd.to_datetime(h["opened_at"]) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    first = pd.DataFrame({"c": cust, "p": prod, "d": days.to_numpy()}).groupby(["c", "p"])["d"].min()
    opened = np.full(held.shape, np.nan)
    opened[first.index.get_level_values(0), first.index.get_level_values(1)] = first.to_numpy()
    return held, opened


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------
def compute_relations(holdings: pd.DataFrame, catalogue: Catalogue | None = None,
                      params: RelationParams | None = None) -> pd.DataFrame:
    """One row per unordered product pair (a before b in catalogue order); see the module doc.

    ``holdings``: ``customer_id``, ``product_id`` and optionally ``opened_at``; duplicates are
    fine. Products outside the catalogue are kept and judged by co-holding alone.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    params = params if params is not None else RelationParams()
    ids = product_order(holdings, cat)
    held, opened = holding_matrices(holdings, ids)
    n_cust, n_prod = held.shape
    ia, ib = np.triu_indices(n_prod, k=1)

    gram = _gram(held)
    n_p = np.diagonal(gram).astype(float)
    n_a, n_b, n_ab = n_p[ia], n_p[ib], gram[ia, ib].astype(float)
    log_or, se = _breadth_adjusted_log_or(held, params.strata_cap)
    log_or, se = log_or[ia, ib], se[ia, ib]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_ab = n_a * n_b / max(n_cust, 1)
        table = pd.DataFrame({
            "product_a": np.asarray(ids, dtype=object)[ia],
            "product_b": np.asarray(ids, dtype=object)[ib],
            "n_customers": n_cust, "n_a": n_a.astype(np.int64), "n_b": n_b.astype(np.int64),
            "n_ab": n_ab.astype(np.int64), "expected_ab": expected_ab,
            "support": n_ab / max(n_cust, 1), "lift": n_ab / expected_ab,
            "p_b_given_a": n_ab / n_a, "p_a_given_b": n_ab / n_b,
            "jaccard": n_ab / (n_a + n_b - n_ab),
            "log_odds_ratio": log_or, "log_odds_ratio_se": se,
        })
    prevalence = n_p / max(n_cust, 1)
    universal = prevalence > params.max_prevalence
    supported = ((np.minimum(n_a, n_b) >= params.min_holders) & ~universal[ia] & ~universal[ib]
                 & np.isfinite(se))

    # attributes
    attrs = [attribute_similarity(cat[a], cat[b]) if a in cat and b in cat else {}
             for a, b in zip(table["product_a"], table["product_b"])]
    attr_frame = pd.DataFrame(attrs, columns=["same_category", "risk_distance", "age_overlap",
                                              "tag_overlap", "attribute_similarity"], dtype=float)
    table = pd.concat([table, attr_frame], axis=1)

    # excess association over what the two products' attributes lead one to expect
    category = np.array([cat[p].category if p in cat else "?" for p in ids], dtype=object)
    group = np.array(["/".join(sorted(g)) for g in zip(category[ia], category[ib])], dtype=object)
    known = np.isfinite(table["attribute_similarity"].to_numpy())
    age_overlap = table["age_overlap"].to_numpy()
    design = _design(group, age_overlap, known, supported, params.min_group_pairs)
    baseline, spread = _expected_association(design, log_or, se, supported)
    table["category_pair"] = group
    table["baseline_log_odds_ratio"] = baseline
    table["excess_log_odds_ratio"] = log_or - baseline
    table["excess_se"] = np.sqrt(se**2 + spread)
    p_hold = np.where(supported, 2 * special.ndtr(-np.abs(log_or - baseline) / table["excess_se"]), np.nan)

    # co-adoption and time order (NaN when the holdings carry no opening times)
    if opened is not None:
        co = _coadoption(opened, float(params.window_days))
    else:
        co = {k: np.full((n_prod, n_prod), np.nan) for k in ("observed", "expected", "at_risk", "first")}
    # co-adoption: log rate ratio (s.e. 1/sqrt(observed)) judged against its expected level like
    # co-holding, both directions in one fit
    obs = np.concatenate([co["observed"][ia, ib], co["observed"][ib, ia]])
    exp_ = np.concatenate([co["expected"][ia, ib], co["expected"][ib, ia]])
    tested = np.tile(supported, 2) & (obs >= params.min_coadoptions) & (exp_ > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rr = np.log(obs / exp_)
        rr_se = 1 / np.sqrt(obs)
    design2 = _design(np.tile(group, 2), np.tile(age_overlap, 2), np.tile(known, 2), tested,
                      params.min_group_pairs)
    level, spread = _expected_association(design2, log_rr, rr_se, tested)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr_excess, rr_excess_se = log_rr - level, np.sqrt(rr_se**2 + spread)
        p_both = np.where(tested, special.ndtr(-rr_excess / rr_excess_se), np.nan)  # excess only
    m = len(table)
    p_adopt = {"ab": p_both[:m], "ba": p_both[m:]}
    for tag, part in (("ab", slice(0, m)), ("ba", slice(m, 2 * m))):
        x, y = (ia, ib) if tag == "ab" else (ib, ia)
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"coadopt_at_risk_{tag}"] = co["at_risk"][x, y]
            table[f"coadopt_n_{tag}"] = obs[part]
            table[f"coadopt_rate_{tag}"] = obs[part] / co["at_risk"][x, y]
            table[f"coadopt_lift_{tag}"] = obs[part] / exp_[part]
        table[f"coadopt_excess_{tag}"] = rr_excess[part]
        table[f"coadopt_excess_se_{tag}"] = rr_excess_se[part]
    table["n_a_first"], table["n_b_first"] = co["first"][ia, ib], co["first"][ib, ia]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["time_order_asymmetry"] = ((table["n_a_first"] - table["n_b_first"])
                                         / (table["n_a_first"] + table["n_b_first"]))

    # one false-discovery correction over every test of the run
    q = _benjamini_hochberg(np.concatenate([p_hold, p_adopt["ab"], p_adopt["ba"]]))
    table["q_coholding"], table["q_coadopt_ab"], table["q_coadopt_ba"] = q[:m], q[m:2 * m], q[2 * m:]
    return _label(table, supported, universal[ia] | universal[ib], params)


def _expected_association(design: np.ndarray, value: np.ndarray, se: np.ndarray,
                          usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a pair's log-scale association would be if the two products were unrelated, given
    their attributes, and how far unrelated pairs scatter around it.

    Products aimed at the same customers are co-held more whether or not they relate (in real
    banks as in the generator: shared tastes for a category, age, wealth). A robust (Huber)
    regression of the usable pairs' association on the design (category pair, age overlap) gives
    the expected level; related pairs are a minority and barely move it. The scatter of unrelated
    pairs (robust residual spread minus sampling noise, plus the fit's own uncertainty) is
    returned as a variance to add to each pair's sampling variance. Rows whose design is all zero
    (products outside the catalogue) get (0, 0): judged on the raw association.
    """
    baseline, variance = np.zeros(len(value)), np.zeros(len(value))
    cols = design[usable].any(axis=0)
    x, y = design[usable][:, cols], value[usable]
    if len(y) < cols.sum() + 5:
        return baseline, variance
    coef = _huber(x, y)
    known = design.any(axis=1)
    baseline[known] = design[known][:, cols] @ coef
    residual = y - x @ coef
    spread = (1.4826 * np.median(np.abs(residual - np.median(residual)))) ** 2
    tau2 = max(spread - float(np.median(se[usable] ** 2)), 0.0)
    variance[known] = tau2 + spread * cols.sum() / len(y)
    return baseline, variance


def _design(group: np.ndarray, age_overlap: np.ndarray, known: np.ndarray, usable: np.ndarray,
            min_pairs: int) -> np.ndarray:
    """Regression design: an intercept, an indicator per category pair with at least
    ``min_pairs`` usable pairs (other category pairs share the intercept's level) and the
    target-age overlap; all-zero rows for pairs with a product outside the catalogue."""
    groups = [g for g in np.unique(group[known]) if (usable & known & (group == g)).sum() >= min_pairs]
    columns = [known] + [(group == g) & known for g in groups]
    columns.append(np.where(known, np.nan_to_num(age_overlap), 0.0))
    return np.column_stack(columns).astype(float)


def _label(table: pd.DataFrame, supported: np.ndarray, universal: np.ndarray,
           params: RelationParams) -> pd.DataFrame:
    sig = lambda col: (table[col] <= params.fdr).to_numpy()  # noqa: E731  (NaN -> False)
    excess, se = table["excess_log_odds_ratio"].to_numpy(), table["excess_se"].to_numpy()
    excess_lo, excess_hi = excess - _Z95 * se, excess + _Z95 * se
    lift = table["lift"].to_numpy()
    similarity = table["attribute_similarity"].to_numpy()
    known = np.isfinite(similarity)

    lifted = (lift >= params.complement_min_lift) & (excess > 0)
    hold_pos = sig("q_coholding") & lifted
    adopt = {t: sig(f"q_coadopt_{t}") & lifted
             & (table[f"coadopt_lift_{t}"].to_numpy() >= params.complement_min_lift) for t in ("ab", "ba")}
    adopt_pos = adopt["ab"] | adopt["ba"]
    not_twins = ~(known & (similarity >= params.complement_max_similarity))
    complement = supported & (hold_pos | adopt_pos) & not_twins

    deficit = (sig("q_coholding") & (excess < 0)
               & (table["expected_ab"].to_numpy() >= params.min_expected))
    same_role = ((table["same_category"].to_numpy() == 1)
                 | ((table["tag_overlap"].to_numpy() > 0) & (similarity >= params.substitute_cross_similarity)))
    similar = np.where(known, same_role, excess_hi <= np.log(params.substitute_max_odds_unknown))
    substitute = supported & deficit & similar
    complement &= ~substitute

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        hold_strength = np.where(hold_pos, 1 - np.exp(-excess_lo), 0.0)
        adopt_strength = np.maximum(*(np.where(adopt[t], 1 - np.exp(
            -(table[f"coadopt_excess_{t}"] - _Z95 * table[f"coadopt_excess_se_{t}"]).to_numpy()), 0.0)
            for t in ("ab", "ba")))
        comp_strength = np.clip(np.maximum(hold_strength, adopt_strength), 0, 1)
        sub_strength = np.clip(1 - np.exp(excess_hi), 0, 1)

    table["relation"] = np.select([complement, substitute], ["complement", "substitute"], "neutral")
    table["strength"] = np.round(np.select([complement, substitute], [comp_strength, sub_strength], 0.0), 6)
    first_a, first_b = table["n_a_first"].to_numpy(), table["n_b_first"].to_numpy()
    with np.errstate(invalid="ignore"):  # two-sided sign test of who opened first (doubling method)
        k_a, k_b = np.nan_to_num(first_a).astype(np.int64), np.nan_to_num(first_b).astype(np.int64)
        total = k_a + k_b
        low = np.minimum(special.bdtr(k_a, total, 0.5), special.bdtr(k_b, total, 0.5))
        order_p = np.where(total > 0, np.minimum(2 * low, 1.0), 1.0)
    direction = np.select(
        [adopt["ab"] & ~adopt["ba"], adopt["ba"] & ~adopt["ab"], adopt["ab"] & adopt["ba"],
         (order_p < 0.05) & (first_a > first_b), (order_p < 0.05) & (first_b > first_a)],
        ["a->b", "b->a", "both", "a->b", "b->a"], "")
    table["direction"] = np.where(complement, direction, "")
    table["evidence"] = np.select(
        [universal, ~supported, complement & hold_pos & adopt_pos, complement & hold_pos, complement,
         substitute & known, substitute],
        ["near-universal product", "low support", "co-holding+co-adoption", "co-holding", "co-adoption",
         "co-holding deficit+same role", "co-holding deficit"], "")
    table["relations_version"] = RELATIONS_VERSION
    return table
