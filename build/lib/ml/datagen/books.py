"""Books of business: each customer's branch and account manager over time.

The roster (branches from ``seeds/branches.csv``, about 250 managers, departures and their
replacements) is drawn once per seed; assignments are drawn per chunk. Both use random streams
of their own (``[seed, BOOKS_STREAM]`` and ``[seed, BOOKS_STREAM, chunk]``), drawn after
everything else, so the books changed no byte of the other raw tables. Vectorised: the only
Python loops run over branches and regions, never over customers. See docs/synthetic_bank.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.core.config import EXTRACT_DATE, HISTORY_START, SEEDS_DIR
from ml.datagen.population import REGION_WEIGHTS

BOOKS_STREAM = 0xB00C5
N_MANAGERS = 250  # account managers in post at any time (a leaver is replaced on the day)
MIN_MANAGERS_PER_BRANCH = 3
MIN_STAYERS_PER_BRANCH = 2  # managers of a branch who never leave: a departing book always has a home
LEAVER_SHARE = 0.08  # share of managers leaving during the history window
HIRE_TAKEOVER = 0.5  # share of a leaver's customers their replacement takes over; the rest go to colleagues
BRANCH_SIZE_SIGMA = 0.5  # lognormal spread of branch sizes within a district
DISTRICT_BRANCH_BOOST = 1.5  # a district's main sub-branch is larger than the others
BOOK_SIZE_SIGMA = 0.8  # lognormal spread of managers' pull within a branch: skewed book sizes
NON_WUXI_AT_HEAD_OFFICE = 0.5  # customers living outside Wuxi: half at the head office, the rest anywhere
RELOCATION_SHARE = 0.03  # customers who moved house during the window (branch changes with the district)
REBALANCING_SHARE = 0.04  # customers moved to a colleague in the same branch
REASONS = ("initial", "manager_departure", "customer_relocation", "rebalancing")
NEVER = np.iinfo(np.int32).max  # day number standing for "still in post" / "still current"


def _day(value: date) -> int:
    return int(np.datetime64(value, "D").astype(np.int64))


WINDOW_START, WINDOW_END = _day(HISTORY_START), _day(EXTRACT_DATE)


@dataclass(frozen=True)
class Roster:
    """Branches and managers; managers are rows of aligned arrays (dates as day numbers)."""

    branches: pd.DataFrame  # the branches seed, in seed order
    branch_weight: np.ndarray  # relative size of each branch
    manager_branch: np.ndarray  # index into branches
    manager_weight: np.ndarray  # a manager's pull within the branch
    hired_on: np.ndarray
    left_on: np.ndarray  # NEVER while in post
    successor: np.ndarray  # index of the hire replacing a leaver, -1 otherwise

    @property
    def manager_id(self) -> np.ndarray:
        return np.array([f"M{i + 1:04d}" for i in range(len(self.manager_branch))], dtype=object)

    @property
    def branch_region(self) -> np.ndarray:
        return self.branches.region_code.to_numpy()

    def table(self) -> pa.Table:
        """The raw ``account_managers`` table, as docs/data_contract.md describes it."""
        return pa.table({
            "manager_id": pa.array(self.manager_id, pa.string()),
            "branch_id": pa.array(self.branches.branch_id.to_numpy()[self.manager_branch], pa.string()),
            "hired_on": pa.array(self.hired_on.astype(np.int32), pa.date32()),
            "left_on": pa.array(self.left_on.astype(np.int32), pa.date32(), mask=self.left_on == NEVER),
        })


def load_branches() -> pd.DataFrame:
    return pd.read_csv(SEEDS_DIR / "branches.csv", dtype={"region_code": str})


@lru_cache(maxsize=1)
def _wuxi_regions() -> frozenset[str]:
    regions = pd.read_csv(SEEDS_DIR / "regions.csv", dtype={"region_code": str})
    return frozenset(regions.loc[regions.is_wuxi, "region_code"])


def _branch_probabilities(branches: pd.DataFrame, weight: np.ndarray, region: str) -> np.ndarray:
    """Where a customer living in ``region`` banks: a branch of their district if there is one."""
    local = (branches.region_code == region).to_numpy()
    if region in _wuxi_regions() and local.any():
        p = weight * local
    else:
        head_office = (branches.branch_type == "head_office").to_numpy()
        p = NON_WUXI_AT_HEAD_OFFICE * head_office / head_office.sum() + (1 - NON_WUXI_AT_HEAD_OFFICE) * weight / weight.sum()
    return p / p.sum()


def _allocate(share: np.ndarray, total: int, minimum: int) -> np.ndarray:
    """Whole manager counts proportional to ``share``, at least ``minimum`` each, summing to ``total``."""
    quota = share * total
    counts = np.maximum(minimum, np.floor(quota).astype(int))
    while counts.sum() < total:
        counts[np.argmax(quota - counts)] += 1
    while counts.sum() > total:
        counts[np.argmax(np.where(counts > minimum, counts - quota, -np.inf))] -= 1
    return counts


def draw_roster(seed: int) -> Roster:
    """Branch sizes, managers per branch (in proportion to expected customers), departures."""
    rng = np.random.default_rng([seed, BOOKS_STREAM])
    branches = load_branches()
    boost = np.where(branches.branch_type == "district", DISTRICT_BRANCH_BOOST, 1.0)
    weight = rng.lognormal(0.0, BRANCH_SIZE_SIGMA, len(branches)) * boost
    region_share = np.array(list(REGION_WEIGHTS.values())) / sum(REGION_WEIGHTS.values())
    expected = sum(share * _branch_probabilities(branches, weight, region)
                   for region, share in zip(REGION_WEIGHTS, region_share))
    counts = _allocate(expected, N_MANAGERS, MIN_MANAGERS_PER_BRANCH)

    manager_branch = np.repeat(np.arange(len(branches)), counts)
    manager_weight = rng.lognormal(0.0, BOOK_SIZE_SIGMA, N_MANAGERS)
    hired_on = WINDOW_START - rng.integers(180, 20 * 365, N_MANAGERS)
    left_on = np.full(N_MANAGERS, NEVER, dtype=np.int64)
    stayers, leavers = counts.copy(), []
    for j in rng.permutation(N_MANAGERS):  # 250 managers, not customers
        if len(leavers) < round(LEAVER_SHARE * N_MANAGERS) and stayers[manager_branch[j]] > MIN_STAYERS_PER_BRANCH:
            stayers[manager_branch[j]] -= 1
            leavers.append(j)
    leavers = np.sort(np.array(leavers, dtype=int))
    left_on[leavers] = rng.integers(WINDOW_START + 30, WINDOW_END - 30, len(leavers))

    # each leaver is replaced by a hire on the day they leave
    successor = np.full(N_MANAGERS + len(leavers), -1)
    successor[leavers] = N_MANAGERS + np.arange(len(leavers))
    return Roster(
        branches=branches,
        branch_weight=weight,
        manager_branch=np.concatenate([manager_branch, manager_branch[leavers]]),
        manager_weight=np.concatenate([manager_weight, rng.lognormal(0.0, BOOK_SIZE_SIGMA, len(leavers))]),
        hired_on=np.concatenate([hired_on, left_on[leavers]]),
        left_on=np.concatenate([left_on, np.full(len(leavers), NEVER)]),
        successor=successor,
    )


def _inverse_cdf(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise draw: column index of each row of ``weights`` (n, k) at uniform ``u`` (n,)."""
    cum = np.cumsum(weights, axis=1)
    if np.any(cum[:, -1] <= 0):
        raise ValueError("a draw has no eligible candidate")
    # the first column whose cumulative weight exceeds the target: never a zero-weight column
    return (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)


def _draw_home_branch(roster: Roster, region: np.ndarray, u: np.ndarray) -> np.ndarray:
    out = np.empty(len(region), dtype=int)
    for code in np.unique(region):
        rows = np.flatnonzero(region == code)
        p = _branch_probabilities(roster.branches, roster.branch_weight, str(code))
        out[rows] = _inverse_cdf(np.broadcast_to(p, (len(rows), len(p))), u[rows])
    return out


def _draw_other_district_branch(roster: Roster, home: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Where a relocated customer banked before: a branch of another district."""
    out = np.empty(len(home), dtype=int)
    for b in np.unique(home):
        rows = np.flatnonzero(home == b)
        p = roster.branch_weight * (roster.branch_region != roster.branch_region[b])
        out[rows] = _inverse_cdf(np.broadcast_to(p, (len(rows), len(p))), u[rows])
    return out


def _draw_manager(roster: Roster, branch: np.ndarray, hired_by: np.ndarray, still_in_post_after: np.ndarray,
                  u: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """A manager of ``branch`` hired on or before ``hired_by`` and leaving after ``still_in_post_after``
    (pass NEVER - 1 for one who never leaves), drawn in proportion to the managers' pull."""
    out = np.empty(len(branch), dtype=int)
    for b in np.unique(branch):
        rows = np.flatnonzero(branch == b)
        cand = np.flatnonzero(roster.manager_branch == b)
        ok = ((roster.hired_on[cand][None, :] <= hired_by[rows, None])
              & (roster.left_on[cand][None, :] > still_in_post_after[rows, None]))
        if exclude is not None:
            ok &= cand[None, :] != exclude[rows, None]
        out[rows] = cand[_inverse_cdf(ok * roster.manager_weight[cand][None, :], u[rows])]
    return out


def assign_chunk(roster: Roster, seed: int, chunk_index: int, customer_id: np.ndarray, region: np.ndarray,
                 customer_since: np.ndarray) -> pa.Table:
    """The raw ``customer_assignments`` rows of one chunk's customers (one row per period)."""
    rng = np.random.default_rng([seed, BOOKS_STREAM, chunk_index])
    n = len(customer_id)
    u = rng.random((n, 7))  # one column per draw below, so the draws do not depend on each other
    event_day = rng.integers(WINDOW_START + 1, WINDOW_END, n)  # a relocation or rebalancing
    never_leaves = np.full(n, NEVER - 1)

    home = _draw_home_branch(roster, np.asarray(region).astype(str), u[:, 0])
    moved = u[:, 1] < RELOCATION_SHARE
    rebalanced = ~moved & (u[:, 1] < RELOCATION_SHARE + REBALANCING_SHARE)
    first_branch = home.copy()
    first_branch[moved] = _draw_other_district_branch(roster, home[moved], u[moved, 2])

    # the period in force when the history window opens: a manager already in post, who is
    # still there on the day of a relocation or rebalancing
    first = _draw_manager(roster, first_branch, np.full(n, WINDOW_START - 1),
                          np.where(moved | rebalanced, event_day, WINDOW_START), u[:, 3])
    since = np.asarray(customer_since).astype("datetime64[D]").astype(np.int64)
    first_from = np.maximum(since, roster.hired_on[first])

    second = np.full(n, -1)  # after a relocation (any manager in post that day) or a rebalancing
    second[moved] = _draw_manager(roster, home[moved], event_day[moved], event_day[moved], u[moved, 4])
    second[rebalanced] = _draw_manager(roster, home[rebalanced], event_day[rebalanced], never_leaves[rebalanced],
                                       u[rebalanced, 4], exclude=first[rebalanced])
    holder = np.where(moved, second, first)  # whose departure would move the customer
    departure = np.where(rebalanced, NEVER, roster.left_on[holder])
    departs = departure < NEVER
    successor = np.full(n, -1)
    if departs.any():
        colleague = _draw_manager(roster, home[departs], departure[departs], never_leaves[departs], u[departs, 6])
        successor[departs] = np.where(u[departs, 5] < HIRE_TAKEOVER, roster.successor[holder[departs]], colleague)

    shift = moved | rebalanced
    periods = [
        (np.arange(n), first_branch, first, first_from, np.where(shift, event_day, departure), 0),
        (np.flatnonzero(shift), home[shift], second[shift], event_day[shift],
         np.where(moved, departure, NEVER)[shift], np.where(moved, 2, 3)[shift]),
        (np.flatnonzero(departs), home[departs], successor[departs], departure[departs],
         np.full(departs.sum(), NEVER), 1),
    ]
    row, branch, manager, start, end, reason = (
        np.concatenate([np.broadcast_to(p[k], p[0].shape) for p in periods]) for k in range(6))
    order = np.lexsort((start, row))
    row, branch, manager, start, end, reason = (a[order] for a in (row, branch, manager, start, end, reason))
    return pa.table({
        "customer_id": pa.array(np.asarray(customer_id, dtype=object)[row], pa.string()),
        "branch_id": pa.array(roster.branches.branch_id.to_numpy()[branch], pa.string()),
        "manager_id": pa.array(roster.manager_id[manager], pa.string()),
        "valid_from": pa.array(start.astype(np.int32), pa.date32()),
        "valid_to": pa.array(end.astype(np.int32), pa.date32(), mask=end == NEVER),
        "assignment_reason": pa.array(np.array(REASONS, dtype=object)[reason], pa.string()),
    })
