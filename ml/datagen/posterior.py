"""The posterior oracle: each customer's best prediction from what is observable at the cut-off.

The prior oracle (``p_observable``) integrates the latent tastes over their prior and reads the
window's triggers off the realised path. This one is the limit a learner faces:

* **Latent tastes, posterior.** Draws of the shared factors (four category tastes and wealth held
  elsewhere, plus the hidden channel draw that shaped the 2024-01-01 holdings) are weighted by the
  likelihood of the customer's own observed history up to the cut-off: the holdings of
  2024-01-01 (drawn product by product, complements first) and, month by month, every adoption
  and every month a product was open to adoption and not taken. Each product's idiosyncrasy is
  integrated exactly given those draws (Gauss-Hermite), and held-elsewhere is a two-point mixture
  (a customer who adopted a product does not hold it elsewhere; 15 months without it raise the
  chance they do). Two passes: prior draws, then draws from a Gaussian fitted to the first pass's
  posterior (with a prior component, so weights stay bounded).
* **The window, integrated forward.** From the cut-off state, one simulated path per draw: payroll
  starts (for customers with none yet), deposit maturities, card replacements, channel bindings,
  everyday activity, closures and the adoptions of other products (complements, substitutes),
  each from the generator's own rules; a product's window probability is averaged over paths and
  over the idiosyncrasy's posterior nodes exactly (Rao-Blackwell), never read off the realised path.

Two nuisance quantities are taken as known: the path-state the generator computed each month
before the cut-off (holdings, channels, triggers, activity, payroll: all in the raw tables) and
each customer's everyday-activity rate and trend, which enter only through the activity term.
Vectorised over blocks of customers x draws; cost in ``PosteriorResult.seconds``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields
from datetime import date

import numpy as np

from ml.datagen import world
from ml.datagen.population import Population
from ml.datagen.scoring import MonthState, Scorer, sigmoid

POSTERIOR_STREAM = 2  # random stream [seed, chunk, 2]: the raw tables' streams are untouched
POSTERIOR_SAMPLE = 100_000  # at least this many customers when the bank is larger (every k-th)
DRAWS = 48  # draws of the shared factors per pass and customer
NODES = 8  # Gauss-Hermite nodes for each product's idiosyncrasy
PRIOR_SHARE = 0.2  # the second pass's proposal keeps this share of prior draws
GRID = np.linspace(-10.0, 10.0, 101, dtype=np.float32)  # log-likelihoods tabulated over the latent term
BLOCK = 400  # customers per vectorised block
PAYROLL_JOIN_SHARE = 0.5 * 0.12  # working customers without payroll in 2024 who join in the 18 months
PAYROLL_NEVER_SHARE = 0.5 * 0.88
MATURITY_RATE = 0.035
BINDING_RATES = (0.015, 0.01, 0.004)
INITIAL_BINDING = (0.75, 0.5, 0.25)


def sample_every(customers: int) -> int:
    """Every k-th customer is in the posterior oracle's sample: all up to 2 x POSTERIOR_SAMPLE."""
    return max(1, customers // POSTERIOR_SAMPLE)


def take(pop: Population, rows: np.ndarray) -> Population:
    """The population restricted (or repeated) to ``rows``."""
    return Population(**{f.name: getattr(pop, f.name)[rows] for f in fields(pop)})


@dataclass
class PosteriorResult:
    cutoff: date
    rows: np.ndarray  # chunk-local indices of the sampled customers
    p: np.ndarray  # (n_sample, targets) window adoption probability, NaN where held at the cut-off
    ess: np.ndarray  # effective number of the second pass's draws, per customer
    factors: np.ndarray  # (n_sample, 5) posterior means of the standard-normal category and wealth factors
    seconds: float  # CPU seconds


class PosteriorRecorder:
    """Keeps, for the sampled customers of a chunk, the history the posterior conditions on."""

    def __init__(self, cutoff: date, pop: Population, start: int, every: int, n_products: int):
        self.cutoff, self.month = cutoff, cutoff_month(cutoff)
        self.rows = np.flatnonzero((start + np.arange(len(pop))) % every == 0)
        n, m = len(self.rows), self.month
        self.observable = np.zeros((m, n, n_products), np.float32)
        self.open = np.zeros((m, n, n_products), bool)  # a month the product could be adopted
        self.adopted = np.zeros((m, n, n_products), bool)
        self.cutoff_state: dict = {}

    def month_start(self, m: int, state: MonthState, last_trigger: np.ndarray, activity: np.ndarray) -> None:
        if m == self.month:
            r = self.rows
            self.cutoff_state = {"holdings": state.holdings[r].copy(), "bound": state.bound[r].copy(),
                                 "last_trigger": last_trigger[r].copy(),
                                 "activity": activity[r, m - 3:m].copy()}

    def month_outcome(self, m: int, observable, suitable, holdings, adopt, substitutes) -> None:
        if m >= self.month:
            return
        r = self.rows
        self.observable[m] = observable[r]
        open_ = suitable[r] & ~holdings[r]
        for src, dst in substitutes:  # a dst draw is unseen in a month its substitute was adopted
            open_[:, dst] &= ~adopt[r, src]
        self.open[m] = open_
        self.adopted[m] = adopt[r]


class PosteriorOracle:
    """Window adoption probabilities of the recorded customers (see the module docstring)."""

    def __init__(self, catalogue: world.Catalogue, base_hold: np.ndarray, base_adopt: np.ndarray,
                 hold_order: list[int]):
        self.catalogue, self.scorer = catalogue, Scorer(catalogue)
        self.base_hold, self.base_adopt = base_hold, base_adopt
        self.targets = np.flatnonzero(catalogue.targets)
        self.category = catalogue.category_index()
        self.wealth_loading = catalogue.latent_wealth_loading()
        nodes, weights = np.polynomial.hermite.hermgauss(NODES)
        self.z = (np.sqrt(2.0) * nodes * world.LATENT_PRODUCT_SD).astype(np.float32)
        self.log_w = np.log(weights / np.sqrt(np.pi)).astype(np.float32)
        self.relations = catalogue.relation_matrix()
        # the 2024-01-01 holdings are drawn in hold order: a product sees only those drawn before it
        position = np.argsort(hold_order)
        self.initial_relations = self.relations * (position[:, None] < position[None, :])
        self.substitutes = [(a, b) for a, b in zip(*np.nonzero(self.relations < 0)) if a < b]
        self.close_rate = catalogue.fit_array("monthly_close")
        self.channel = np.array(list(world.CHANNEL_EFFECT.values()))
        index = {p: i for i, p in enumerate(catalogue.ids)}
        self.deposits = [index["SAV_TIME"], index["SAV_LCD"]]
        self.n_shared = len(world.CATEGORIES) + 1

    def run(self, recorder: PosteriorRecorder, pop: Population, held0: np.ndarray, elsewhere_p: np.ndarray,
            rng: np.random.Generator) -> PosteriorResult:
        started = time.process_time()  # CPU: wall time on a shared machine says little
        n = len(recorder.rows)
        p = np.full((n, len(self.targets)), np.nan, np.float32)
        ess = np.zeros(n, np.float32)
        factors = np.zeros((n, self.n_shared), np.float32)
        for lo in range(0, n, BLOCK):
            block = np.arange(lo, min(lo + BLOCK, n))
            rows = recorder.rows[block]
            p[block], ess[block], factors[block] = self._block(recorder, block, take(pop, rows), held0[rows],
                                                               elsewhere_p[rows], rng)
        return PosteriorResult(recorder.cutoff, recorder.rows, p, ess, factors,
                               time.process_time() - started)

    # -- the history's likelihood, tabulated over a product's latent term ----------------------
    def _history_tables(self, rec: PosteriorRecorder, block: np.ndarray, pop: Population, held0: np.ndarray):
        """(n, P, G) log-likelihoods of the monthly outcomes and of the initial holdings, as
        functions of the product's latent term (the initial one shifted by the hidden channels)."""
        grid = GRID[None, None, :]
        monthly = np.zeros((len(block), held0.shape[1], len(GRID)), np.float32)
        for m in range(rec.month):
            x = rec.observable[m, block][:, :, None] + grid
            term = rec.adopted[m, block][:, :, None] * x - np.logaddexp(0, x)
            monthly += np.where(rec.open[m, block][:, :, None], term, 0)
        payroll0 = pop.payroll_start < 0
        activity = world.ACTIVITY_EFFECT * (np.log1p(3 * pop.activity_rate) - 1.0)
        x0 = (self.base_hold[None, :] + self.scorer.profile(pop, 0, payroll0) + activity[:, None]
              + held0.astype(float) @ self.initial_relations).astype(np.float32)
        x = x0[:, :, None] + grid
        initial = held0[:, :, None] * x - np.logaddexp(0, x)
        initial = np.where(self.scorer.suitable(pop, 0)[:, :, None], initial, 0).astype(np.float32)
        never = ~rec.adopted[:, block].any(axis=0)
        return monthly, initial, never

    def _hidden_channels(self, pop: Population, shape, rng) -> np.ndarray:
        """The log-odds shift of the channels drawn (and not kept) for the 2024-01-01 holdings."""
        young = np.clip((70 - pop.age0) / 50, 0.05, 0.95)[:, None]
        shift = np.zeros(shape, np.float32)
        for rate, effect in zip(INITIAL_BINDING, self.channel):
            shift += effect * (rng.random(shape) < rate * young)
        return shift

    def _log_node_terms(self, mu, shift, tables, elsewhere_p):
        """(n, K, P, Q) log [w_q x P(initial | L) x P(monthly, not elsewhere | L)] and the same
        with elsewhere, at L = mu + the idiosyncrasy's node q."""
        monthly, initial, never = tables
        L = mu[..., None] + self.z  # (n, K, P, Q)
        h = _interp(monthly, L)
        i = _interp(initial, L + shift[:, :, None, None])
        with np.errstate(divide="ignore"):
            log_keep = np.log1p(-elsewhere_p).astype(np.float32)[:, None, :, None]
            log_else = (np.log(elsewhere_p) + np.where(never, 0.0, -np.inf)).astype(np.float32)[:, None, :, None]
        base = self.log_w + i
        return base + log_keep + h, base + log_else

    def _mu(self, u: np.ndarray) -> np.ndarray:
        """(n, K, P) shared part of the latent term from the standard-normal factors u (n, K, 5)."""
        cat = u[..., self.category] * world.LATENT_CATEGORY_SD
        return (cat + u[..., -1:] * self.wealth_loading).astype(np.float32)

    def _weights(self, u, shift, tables, elsewhere_p, log_ratio):
        keep, other = self._log_node_terms(self._mu(u), shift, tables, elsewhere_p)
        both = np.logaddexp(keep, other)
        log_m = _logsumexp(both, axis=-1)  # (n, K, P)
        log_w = log_m.sum(axis=-1) + log_ratio
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        return w / w.sum(axis=1, keepdims=True), keep, both, log_m

    def _block(self, rec, block, pop, held0, elsewhere_p, rng):
        n, k = len(block), DRAWS
        tables = self._history_tables(rec, block, pop, held0)
        # pass 1: prior draws
        u = rng.standard_normal((n, k, self.n_shared)).astype(np.float32)
        w, *_ = self._weights(u, self._hidden_channels(pop, (n, k), rng), tables, elsewhere_p, 0.0)
        mean = np.einsum("nk,nkd->nd", w, u)
        sd = np.sqrt(np.maximum(np.einsum("nk,nkd->nd", w, (u - mean[:, None]) ** 2), 0.04)) * 1.3
        # pass 2: a Gaussian around the first pass's posterior, with a share of prior draws
        from_prior = rng.random((n, k)) < PRIOR_SHARE
        e = rng.standard_normal((n, k, self.n_shared)).astype(np.float32)
        u = np.where(from_prior[..., None], e, mean[:, None] + sd[:, None] * e).astype(np.float32)
        log_prior = -0.5 * (u ** 2).sum(-1)
        log_fit = (-0.5 * (((u - mean[:, None]) / sd[:, None]) ** 2).sum(-1) - np.log(sd).sum(-1)[:, None])
        log_ratio = log_prior - np.logaddexp(np.log(PRIOR_SHARE) + log_prior, np.log(1 - PRIOR_SHARE) + log_fit)
        w, keep, both, log_m = self._weights(u, self._hidden_channels(pop, (n, k), rng), tables, elsewhere_p,
                                             log_ratio)
        ess = 1.0 / (w ** 2).sum(axis=1)
        window = self._forward(rec, block, pop, u, keep, both, log_m, rng)  # (n, K, T)
        p = np.einsum("nk,nkt->nt", w, window)
        held = rec.cutoff_state["holdings"][block][:, self.targets]
        return np.where(held, np.nan, p).astype(np.float32), ess, np.einsum("nk,nkd->nd", w, u)

    # -- the window, forward from the cut-off ----------------------------------------------------
    def _forward(self, rec, block, pop, u, keep, both, log_m, rng) -> np.ndarray:
        n, k, n_products = u.shape[0], u.shape[1], keep.shape[2]
        rows = np.repeat(np.arange(n), k)
        people = take(pop, rows)
        mu = self._mu(u).reshape(n * k, n_products)
        keep, both, log_m = (a.reshape(n * k, n_products, -1) for a in (keep, both, log_m[..., None]))
        # the path's own draw of each idiosyncrasy node and of held-elsewhere, from their posterior
        post = np.exp(both - log_m)
        node = (post.cumsum(-1) < rng.random(post.shape[:2])[..., None]).sum(-1).clip(0, NODES - 1)
        chosen = np.take_along_axis(keep - both, node[..., None], -1)[..., 0]
        elsewhere = rng.random(chosen.shape) >= np.exp(chosen)
        latent = mu + self.z[node]
        # the estimator's weights: P(node q, not elsewhere | history, draw)
        t = self.targets
        weight = np.exp(keep[:, t] - log_m[:, t])  # (R, T, Q)

        state = rec.cutoff_state
        holdings = state["holdings"][block][rows]
        bound = state["bound"][block][rows]
        last = state["last_trigger"][block][rows].copy()
        recent_activity = state["activity"][block][rows].astype(float)
        payroll_start = self._payroll_starts(people, rec.month, rng)
        log_survive = np.zeros(weight.shape, np.float32)
        for m in range(rec.month, rec.month + 3):
            view = MonthState(holdings, bound, (m - last >= 1) & (m - last <= world.TRIGGER_WINDOW_MONTHS),
                              recent_activity[:, -3:].sum(axis=1), payroll_start < m)
            observable = (self.base_adopt + self.scorer.observable(people, m, view)).astype(np.float32)
            suitable = self.scorer.suitable(people, m)
            path_hazard = sigmoid(observable + latent) * (suitable & ~elsewhere)
            hazard = sigmoid(observable[:, t, None] + mu[:, t, None] + self.z) * suitable[:, t, None]
            for src, dst in self.substitutes:  # dst is dropped in a month its substitute is adopted
                if dst in t:
                    col = int(np.flatnonzero(t == dst)[0])
                    hazard[:, col] *= (1 - path_hazard[:, src] * ~holdings[:, src])[:, None]
            log_survive += np.log1p(-np.minimum(hazard, 1 - 1e-7))
            if m == rec.month + 2:
                break
            adopt = ~holdings & (rng.random(holdings.shape) < path_hazard)
            for src, dst in self.substitutes:
                adopt[:, dst] &= ~adopt[:, src]
            close = holdings & (rng.random(holdings.shape) < self.close_rate[None, :])
            holdings = (holdings & ~close) | adopt
            recent_activity = np.column_stack([recent_activity, self._activity(people, bound, m, rng)])
            last = self._triggers(people, holdings, payroll_start, last, m, rng)
            bound = self._bindings(people, bound, m, rng)
        return (weight * -np.expm1(log_survive)).sum(-1).reshape(n, k, len(t))

    def _payroll_starts(self, pop: Population, cutoff_month: int, rng) -> np.ndarray:
        """Payroll starts seen before the cut-off are kept; the rest are drawn from the rule."""
        known = pop.payroll_start < cutoff_month
        working = (pop.age0 > 21) & (pop.age0 < 58)
        months_left = 18 - cutoff_month
        per_month = PAYROLL_JOIN_SHARE / 18
        p_join = per_month * months_left / (per_month * months_left + PAYROLL_NEVER_SHARE)
        joins = working & ~known & (rng.random(len(pop)) < p_join)
        drawn = np.where(joins, rng.integers(cutoff_month, 18, len(pop)), 99)
        return np.where(known, pop.payroll_start, drawn)

    def _activity(self, pop: Population, bound, m, rng) -> np.ndarray:
        rate = pop.activity_rate * np.exp(pop.activity_slope * m) * (1 + 0.5 * bound[:, 0])
        return rng.poisson(rate).astype(float)

    def _triggers(self, pop: Population, holdings, payroll_start, last, m, rng) -> np.ndarray:
        last = last.copy()
        last[payroll_start == m, 0] = m
        deposit = holdings[:, self.deposits].any(axis=1)
        last[deposit & (rng.random(len(pop)) < MATURITY_RATE), 1] = m
        replace = np.where(pop.card == 0, 0.02 if m < 12 else 0.008, 0.003)
        last[rng.random(len(pop)) < replace, 2] = m
        return last

    def _bindings(self, pop: Population, bound, m, rng) -> np.ndarray:
        young = np.clip((70 - pop.age_at_month(m)) / 50, 0.05, 0.95)
        new = rng.random(bound.shape) < np.array(BINDING_RATES)[None, :] * young[:, None]
        return bound | new


def _interp(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``table`` (n, P, G) over GRID at ``x`` (n, K, P, Q)."""
    n, p, g = table.shape
    step = float(GRID[1] - GRID[0])
    pos = np.clip((x - GRID[0]) / step, 0, g - 1 - 1e-6)
    i0 = pos.astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    base = (np.arange(n)[:, None, None, None] * p + np.arange(p)[None, None, :, None]) * g
    flat = table.reshape(-1)
    lo = flat[base + i0]
    return lo + frac * (flat[base + i0 + 1] - lo)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    return (np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top).squeeze(axis)


def cutoff_month(cutoff: date) -> int:
    from ml.core.config import HISTORY_START

    return (cutoff.year - HISTORY_START.year) * 12 + cutoff.month - HISTORY_START.month
